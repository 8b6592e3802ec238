import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.analysis import analyze

run_stage(
    lambda: analyze(
        cells=snakemake.params.cells,
        outputs=dict(snakemake.output.items()),
        n_resamples=snakemake.params.n_resamples,
        notes=snakemake.params.notes,
    ),
    job=snakemake,
)
