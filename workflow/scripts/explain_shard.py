import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.strong_signals import explain_shard

run_stage(
    lambda: explain_shard(
        split_paths=snakemake.params.splits,
        dataset_manifest=snakemake.input.manifest,
        model_dir=snakemake.params.model_dir,
        explain=snakemake.params.explain,
        generation=snakemake.params.generation,
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        work_dir=snakemake.params.work_dir,
        shard=int(snakemake.wildcards.shard),
        output=snakemake.output.shard,
        prefix_store=snakemake.input.get("prefix_store"),
    ),
    job=snakemake,
)
