import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.strong_signals import gather_debate

run_stage(
    lambda: gather_debate(
        shard_paths=list(snakemake.input.shards),
        split_paths=snakemake.params.splits,
        dataset_manifest=snakemake.input.manifest,
        model_dir=snakemake.params.model_dir,
        debate=snakemake.params.debate,
        generation=snakemake.params.generation,
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        output=snakemake.output.transcripts,
        stats_path=snakemake.output.stats,
        prefix_store=snakemake.input.get("prefix_store"),
    ),
    job=snakemake,
)
