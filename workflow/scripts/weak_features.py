import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.align import compute_features
from w2s_eda.logs import run_stage

run_stage(
    lambda: compute_features(
        split_paths=snakemake.params.splits,
        model_dir=snakemake.params.model_dir,
        parts=snakemake.params.parts,
        train=snakemake.params.train,
        device=snakemake.params.device,
        dtype=snakemake.params.dtype,
        output=snakemake.output.features,
        role="weak",
        explanations=snakemake.input.get("explanations"),
        debates=snakemake.input.get("debates"),
        consultancy=snakemake.input.get("consultancy"),
        judge=snakemake.input.get("judge"),
        n_samples=snakemake.params.n_samples,
    ),
    job=snakemake,
)
