import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.strong_signals import gather_explain

run_stage(
    lambda: gather_explain(
        shard_paths=list(snakemake.input.shards),
        explain=snakemake.params.explain,
        generation=snakemake.params.generation,
        seed=int(snakemake.wildcards.seed),
        output=snakemake.output.explanations,
        stats_path=snakemake.output.stats,
    ),
    job=snakemake,
)
