import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.data.bigbench import fetch_tasks
from w2s_eda.logs import run_stage

run_stage(lambda: fetch_tasks({snakemake.params.folder: snakemake.output.task}), job=snakemake)
