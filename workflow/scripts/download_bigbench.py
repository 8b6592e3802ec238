import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.data.bigbench import obtain_task
from w2s_eda.logs import run_stage

run_stage(
    lambda: obtain_task(
        snakemake.wildcards.bigbench_task,
        snakemake.params.folder,
        snakemake.output.task,
        snakemake.params.shipped,
    ),
    job=snakemake,
)
