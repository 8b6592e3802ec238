# Adapters only: the config is validated and the study model (src/w2s_eda/study.py) decides what
# is computed, where it is written and what each output depends on. Scripts import w2s_eda through
# the workflow/scripts/w2s_eda link to src/, so they also work in the per-stage conda envs.
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.io import report as in_report  # `report` opens a directive in .smk files

from w2s_eda.errors import ConfigError
from w2s_eda.study import (
    MODEL_STAGES,
    PATHS,
    REPORTED,
    SPLITS,
    Study,
    check_local_data,
    flat_files,
    validate_config,
)

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

STUDY = Study(config)


def _alternatives(values):
    """A wildcard regex matching exactly these values (and nothing, if there are none)."""
    return "|".join(re.escape(str(value)) for value in values) or "(?!)"


wildcard_constraints:
    dataset=_alternatives(STUDY.datasets),
    seed=_alternatives(STUDY.seeds),
    bigbench_task=_alternatives(STUDY.bigbench_tasks()),
    model=_alternatives(config["models"]),
    strong=_alternatives(STUDY.models("strong")),
    weak=_alternatives(STUDY.models("weak")),
    loss=_alternatives(STUDY.losses),
    context=r"item(\+(explanation|debate|consultancy|judge))*",
    judge=_alternatives(STUDY.judge_names()),
    kind="debates|consultancy",
    setting=_alternatives(STUDY.all_settings()),
    conflict=_alternatives(STUDY.conflicts),
    shard=r"\d+",
    round=r"\d+",


def settings(stage):
    """A stage's cache key: the config subset its outputs depend on (passed as params); a
    training or feature stage's is a function of the job's model."""
    if stage in MODEL_STAGES:
        return lambda wildcards: STUDY.settings(stage, wildcards)
    return STUDY.settings(stage)


def cell_table_inputs(wildcards):
    return flat_files(STUDY.cell_files(wildcards)["metrics"])


def cell_table_files(wildcards):
    return STUDY.cell_files(wildcards)["metrics"]


def analysis_outputs():
    """The analysis outputs; those in the HTML report carry their caption (study.REPORTED)."""
    return {
        name: (
            in_report(path, caption=f"../report/{meta[0]}", category=meta[1], labels=meta[2])
            if (meta := REPORTED.get(name))
            else path
        )
        for name, path in STUDY.analysis_outputs().items()
    }


def analysis_inputs(wildcards):
    return STUDY.analysis_files()


def split_paths(*names):
    return lambda wildcards: STUDY.splits(wildcards, names or SPLITS)


def model_dir(role):
    return lambda wildcards: STUDY.model_dir(wildcards[role])


def arm_spec(wildcards):
    return STUDY.arm(wildcards.arm).spec()


def chunk_dir(wildcards, output):
    """Where a stage's finished chunks live, beside (not inside) its declared outputs."""
    return str(Path(output[0]).parent / "chunks")


def training_threads(role):
    """Probe heads train in a second on one thread; backbones use more."""
    return 1 if config["train"][role]["mode"] == "probe" else 4
