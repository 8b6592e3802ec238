import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.metrics import summarize_cell
from w2s_eda.logs import run_stage

arms, losses = snakemake.params.arms, snakemake.params.losses
run_stage(
    lambda: summarize_cell(
        weak=dict(zip(arms, snakemake.input.weak)),
        students=dict(
            zip([f"{arm}/{loss}" for arm in arms for loss in losses], snakemake.input.students)
        ),
        ceiling=snakemake.input.ceiling,
        output_json=snakemake.output.summary,
        output_md=snakemake.output.table,
    ),
    job=snakemake,
)
