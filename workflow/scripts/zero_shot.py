import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.strong_signals import zero_shot

run_stage(
    lambda: zero_shot(
        split_paths=snakemake.params.splits,
        dataset_manifest=snakemake.input.manifest,
        model_dir=snakemake.params.model_dir,
        template=snakemake.params.zero_shot["template"],
        generation=snakemake.params.generation,
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        work_dir=snakemake.params.work_dir,
        output=snakemake.output.zero_shot,
        stats_path=snakemake.output.stats,
        prefix_store=snakemake.input.get("prefix_store"),
    ),
    job=snakemake,
)
