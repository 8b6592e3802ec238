# EDA weak-to-strong study. This file only assembles: workflow/rules/common.smk adapts the study
# model (src/w2s_eda/study.py), one rule file per stage, and all logic is in the w2s_eda package.
from snakemake.utils import min_version

min_version("9.0")

# No `configfile:` here: profiles/default/config.yaml names config/config.yaml, so that
# `--configfile other.yaml` replaces the default study instead of being merged into it.


# `snakemake --report results/report.html` builds a self-contained report from this description
# and the outputs marked with report() (the analysis stage's tables and plots).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# W&B online needs an API key, from the environment only (never a config file, param or log).
if config["wandb"]["mode"] == "online":

    envvars:
        "WANDB_API_KEY",


include: "workflow/rules/prep.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/prefixes.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/debate.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/train_strong.smk"
include: "workflow/rules/analysis.smk"


# The analysis outputs and every cell's table; everything else is computed only as they need it.
rule all:
    default_target: True
    input:
        STUDY.targets(),
