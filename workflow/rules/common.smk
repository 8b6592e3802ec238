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
    ]
