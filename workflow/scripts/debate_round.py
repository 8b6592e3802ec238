import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.strong_signals import debate_round_shard

run_stage(
    lambda: debate_round_shard(
        round_number=int(snakemake.wildcards.round),
        split_paths=snakemake.params.splits,
        dataset_manifest=snakemake.input.manifest,
        model_dir=snakemake.params.model_dir,
        debate=snakemake.params.debate,
        generation=snakemake.params.generation,
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        previous=snakemake.input.get("previous"),
        work_dir=snakemake.params.work_dir,
        shard=int(snakemake.wildcards.shard),
        output=snakemake.output.shard,
        prefix_store=snakemake.input.get("prefix_store"),
    ),
    job=snakemake,
)
