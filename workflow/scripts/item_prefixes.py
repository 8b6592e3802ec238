import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.strong_signals import item_prefixes

run_stage(
    lambda: item_prefixes(
        split_paths=snakemake.params.splits,
        dataset_manifest=snakemake.input.manifest,
        model_dir=snakemake.params.model_dir,
        templates=dict(snakemake.params.templates),
        generation=snakemake.params.generation,
        device=snakemake.params.device,
        output=snakemake.output.store,
    ),
    job=snakemake,
)
