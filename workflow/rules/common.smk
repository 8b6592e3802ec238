# Shared setup for all stages: config validation, wildcard constraints, input and param functions.
# Scripts import w2s_eda through the workflow/scripts/w2s_eda link to src/, so they also work in the
# per-stage conda envs, where the package itself is not installed.
from pathlib import Path

from snakemake.exceptions import WorkflowError

from w2s_eda.config import local_files, model_names, split_sizes, validate_config
from w2s_eda.data.registry import DATASETS
from w2s_eda.errors import ConfigError

try:
    # Fill the schema's defaults in place, so `config` stays the object Snakemake knows.
    config.update(
        validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None


def _alternatives(values):
    """A wildcard regex matching exactly these values (and nothing, if there are none)."""
    return "|".join(str(value) for value in values) or "(?!)"


def _registered(dataset):
    spec = config["datasets"][dataset]
    return None if "path" in spec else DATASETS[spec.get("registry", dataset)]


BIGBENCH_TASKS = sorted(
    {
        entry.name
        for entry in map(_registered, config["datasets"])
        if entry is not None and entry.bigbench_task
    }
)


wildcard_constraints:
    dataset=_alternatives(config["datasets"]),
    seed=_alternatives(config["seeds"]),
    bigbench_task=_alternatives(BIGBENCH_TASKS),
    model=_alternatives(config["models"]),
    strong=_alternatives(model_names(config, "strong")),
    shard=r"\d+",
    round=r"\d+",


def prep_inputs(wildcards):
    """A prep job reads its local files, or the BIG-bench task file a download job writes."""
    spec = config["datasets"][wildcards.dataset]
    if "path" in spec:
        return local_files(spec)
    entry = _registered(wildcards.dataset)
    if entry.bigbench_task:
        return {"bigbench": rules.download_bigbench.output.task.format(bigbench_task=entry.name)}
    return {}


def dataset_spec(wildcards):
    return config["datasets"][wildcards.dataset]


def dataset_sizes(wildcards):
    return split_sizes(config, wildcards.dataset)


def bigbench_folder(wildcards):
    return DATASETS[wildcards.bigbench_task].bigbench_task


def model_spec(wildcards):
    return config["models"][wildcards.model]


def study_targets():
    """Everything `rule all` asks for; later stages add their outputs here."""
    return [
        *expand(rules.prep.output.manifest, dataset=config["datasets"], seed=config["seeds"]),
        *expand(rules.prepare_model.output.manifest, model=model_names(config)),
        *expand(rules.explain.output.explanations, **study_cells()),
        *expand(rules.debate.output.debates, **study_cells()),
    ]


# --- the strong model's stages (explain, debate) ------------------------------------------------


def strong_stage_inputs(wildcards):
    """The splits, the dataset manifest and the prepared strong model."""
    prep = rules.prep.output
    files = {
        split: getattr(prep, split).format(dataset=wildcards.dataset, seed=wildcards.seed)
        for split in ("weak_train", "w2s_train", "test")
    }
    files["manifest"] = prep.manifest.format(dataset=wildcards.dataset, seed=wildcards.seed)
    files["model"] = rules.prepare_model.output.manifest.format(model=wildcards.strong)
    return files


def chunk_dir(wildcards, output):
    """Where a stage's finished chunks live, beside (not inside) its declared outputs."""
    return str(Path(output[0]).parent / "chunks")


def explain_shards(wildcards):
    return expand(
        rules.explain_shard.output.shard,
        shard=range(config["explain"]["n_shards"]),
        dataset=wildcards.dataset,
        seed=wildcards.seed,
        strong=wildcards.strong,
    )


def _round_shard(wildcards, round_number, shard=None):
    values = {key: wildcards[key] for key in ("dataset", "seed", "strong")}
    values["shard"] = wildcards.shard if shard is None else shard
    values["round"] = round_number
    return rules.debate_round.output.shard.format(**values)


def debate_round_inputs(wildcards):
    files = strong_stage_inputs(wildcards)
    if int(wildcards.round) > 1:
        files["previous"] = _round_shard(wildcards, int(wildcards.round) - 1)
    return files


def debate_round_params(wildcards):
    """The debate settings one round depends on: not n_rounds, so adding a round reruns nothing."""
    return {
        key: value
        for key, value in config["debate"].items()
        if key not in ("n_rounds", "judge", "drift_sample", "drift_template")
    }


def debate_inputs(wildcards):
    files = strong_stage_inputs(wildcards)
    files["shards"] = [
        _round_shard(wildcards, config["debate"]["n_rounds"], shard)
        for shard in range(config["debate"]["n_shards"])
    ]
    judge = config["debate"]["judge"]
    if judge["enabled"] and "model" in judge:
        files["judge_model"] = rules.prepare_model.output.manifest.format(model=judge["model"])
    return files


def study_cells():
    """(dataset, seed, strong model) combinations the strong model's stages run for."""
    return {
        "dataset": list(config["datasets"]),
        "seed": config["seeds"],
        "strong": model_names(config, "strong"),
    }
