import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.models import prepare_model

run_stage(
    lambda: prepare_model(
        name=snakemake.wildcards.model,
        spec=snakemake.params.spec,
        out_dir=snakemake.params.model_dir,
        offline=snakemake.params.offline,
    ),
    job=snakemake,
)
