import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.strong_signals import judge_transcripts

run_stage(
    lambda: judge_transcripts(
        transcripts_path=snakemake.input.transcripts,
        split_paths=snakemake.params.splits,
        dataset_manifest=snakemake.input.manifest,
        judge_model_dir=snakemake.params.judge_model_dir,
        template=snakemake.params.judge["template"],
        generation=snakemake.params.generation,
        device=snakemake.params.device,
        output=snakemake.output.judge,
        stats_path=snakemake.output.stats,
    ),
    job=snakemake,
)
