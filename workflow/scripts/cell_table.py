import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.cell_table import summarize_cell
from w2s_eda.logs import run_stage

files = snakemake.params.files
run_stage(
    lambda: summarize_cell(
        weak=files["weak"],
        students=files["students"],
        ceiling=files["ceiling"],
        output_json=snakemake.output.summary,
        output_md=snakemake.output.table,
    ),
    job=snakemake,
)
