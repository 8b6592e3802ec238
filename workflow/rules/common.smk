# Shared setup for all stages: config validation, wildcard constraints, input and param functions.
# Scripts import w2s_eda through the workflow/scripts/w2s_eda link to src/, so they also work in the
# per-stage conda envs, where the package itself is not installed.
from pathlib import Path

from snakemake.exceptions import WorkflowError

from w2s_eda.arms import all_arms, context_key, parts_of
from w2s_eda.config import (
    check_local_data,
    local_files,
    model_names,
    split_sizes,
    validate_config,
)
from w2s_eda.data.registry import DATASETS
from w2s_eda.errors import ConfigError

try:
    # Fill the schema's defaults in place, so `config` stays the object Snakemake knows.
    config.update(
        validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    )
    # Local data files are read once, by the main process (not by each job's re-parse).
    if workflow.is_main_process:
        check_local_data(config)
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
        *[rules.w2s_summary.output.table.format(**cell) for cell in pair_cells()],
        rules.analysis.output.csv,
    ]


# --- the strong model's stages (explain, debate) ------------------------------------------------


def _cell(wildcards):
    """The (dataset, seed, strong model) a job's wildcards name."""
    return {key: wildcards[key] for key in ("dataset", "seed", "strong")}


def _splits(wildcards, names=("weak_train", "w2s_train", "test")):
    prep = rules.prep.output
    return {
        name: getattr(prep, name).format(dataset=wildcards.dataset, seed=wildcards.seed)
        for name in names
    }


def strong_stage_inputs(wildcards):
    """The splits, the dataset manifest and the prepared strong model."""
    files = _splits(wildcards)
    files["manifest"] = rules.prep.output.manifest.format(
        dataset=wildcards.dataset, seed=wildcards.seed
    )
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
    values = _cell(wildcards)
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


# --- align: the weak model's arms, the strong ceiling and the W2S students ----------------------

ARMS = all_arms(config)


wildcard_constraints:
    weak=_alternatives(model_names(config, "weak")),
    arm=_alternatives(config["align"]["arms"]),
    loss=_alternatives(config["train"]["strong"]["losses"]),
    context=r"item(\+(explanation|debate))*",


def _signal_files(wildcards, parts):
    """The explanations / debates files an input layout reads."""
    files = {}
    if "explanation" in parts:
        files["explanations"] = rules.explain.output.explanations.format(**_cell(wildcards))
    if "debate" in parts:
        files["debates"] = rules.debate.output.debates.format(**_cell(wildcards))
    return files


def feature_settings(role):
    """The training keys features depend on (so changing lr or epochs never recomputes them)."""
    train = config["train"][role]
    return {key: train[key] for key in ("layer", "max_length", "batch_size")}


def weak_feature_inputs(wildcards):
    files = _splits(wildcards)
    files["model"] = rules.prepare_model.output.manifest.format(model=wildcards.weak)
    files.update(_signal_files(wildcards, parts_of(wildcards.context)))
    return files


def arm_spec(wildcards):
    return ARMS[wildcards.arm]


def train_weak_inputs(wildcards):
    spec = ARMS[wildcards.arm]
    files = _splits(wildcards)
    files["model"] = rules.prepare_model.output.manifest.format(model=wildcards.weak)
    if config["train"]["weak"]["mode"] == "probe":
        files["features"] = rules.weak_features.output.features.format(
            **_cell(wildcards), weak=wildcards.weak, context=context_key(spec["context"])
        )
    else:
        files.update(_signal_files(wildcards, spec["context"]))
    if spec["targets"] == "strong_zero_shot":
        files.update(_signal_files(wildcards, ["explanation"]))
    return files


def strong_feature_inputs(wildcards):
    files = _splits(wildcards, ("w2s_train", "test"))
    files["model"] = rules.prepare_model.output.manifest.format(model=wildcards.strong)
    return files


def train_strong_inputs(wildcards):
    files = strong_feature_inputs(wildcards)
    if config["train"]["strong"]["mode"] == "probe":
        files["features"] = rules.strong_features.output.features.format(**_cell(wildcards))
    if "arm" in wildcards.keys():
        files["soft_labels"] = rules.train_weak.output.soft_labels.format(
            **_cell(wildcards), weak=wildcards.weak, arm=wildcards.arm
        )
    return files


def training_threads(role):
    """Probe heads train in a second on one thread; backbones use more."""
    return 1 if config["train"][role]["mode"] == "probe" else 4


def w2s_summary_inputs(wildcards):
    cell = {**_cell(wildcards), "weak": wildcards.weak}
    return {
        "ceiling": rules.train_ceiling.output.metrics.format(**_cell(wildcards)),
        "weak": [
            rules.train_weak.output.metrics.format(**cell, arm=arm)
            for arm in config["align"]["arms"]
        ],
        "students": [
            rules.train_student.output.metrics.format(**cell, arm=arm, loss=loss)
            for arm in config["align"]["arms"]
            for loss in config["train"]["strong"]["losses"]
        ],
    }


def pair_cells():
    """(dataset, seed, weak, strong) combinations: one W2S study cell each."""
    return [
        {"dataset": dataset, "seed": seed, "weak": pair["weak"], "strong": pair["strong"]}
        for dataset in config["datasets"]
        for seed in config["seeds"]
        for pair in config["pairs"]
    ]


# --- analysis -----------------------------------------------------------------------------------


def analysis_cells(wildcards=None):
    """Every cell's prediction files, by role, for the analysis stage."""
    cells = []
    for cell in pair_cells():
        strong = {key: cell[key] for key in ("dataset", "seed", "strong")}
        cells.append(
            {
                **cell,
                "ceiling_predictions": rules.train_ceiling.output.test.format(**strong),
                "debate_stats": rules.debate.output.stats.format(**strong),
                "weak_predictions": {
                    arm: rules.train_weak.output.test.format(**cell, arm=arm)
                    for arm in config["align"]["arms"]
                },
                "student_predictions": {
                    f"{arm}/{loss}": rules.train_student.output.test.format(
                        **cell, arm=arm, loss=loss
                    )
                    for arm in config["align"]["arms"]
                    for loss in config["train"]["strong"]["losses"]
                },
            }
        )
    return cells


def analysis_inputs(wildcards):
    files = []
    for cell in analysis_cells():
        files += [cell["ceiling_predictions"], cell["debate_stats"]]
        files += [*cell["weak_predictions"].values(), *cell["student_predictions"].values()]
    return {"predictions": files}
