import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.strong_signals import gather_debate

judge_model = snakemake.input.get("judge_model")
run_stage(
    lambda: gather_debate(
        shard_paths=list(snakemake.input.shards),
        split_paths={split: snakemake.input[split] for split in ("weak_train", "w2s_train", "test")},
        dataset_manifest=snakemake.input.manifest,
        model_dir=snakemake.input.model.rsplit("/", 1)[0],
        judge_model_dir=judge_model.rsplit("/", 1)[0] if judge_model else None,
        debate=snakemake.params.debate,
        generation=snakemake.params.generation,
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        output=snakemake.output.debates,
        stats_path=snakemake.output.stats,
    ),
    job=snakemake,
)
