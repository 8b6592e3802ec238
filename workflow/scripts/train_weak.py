import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.align import train_weak
from w2s_eda.logs import run_stage

run_stage(
    lambda: train_weak(
        arm=snakemake.wildcards.arm,
        arm_spec=snakemake.params.arm,
        split_paths=snakemake.params.splits,
        model_dir=snakemake.params.model_dir,
        train=snakemake.params.train,
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        dtype=snakemake.params.dtype,
        outputs=dict(snakemake.output.items()),
        features=snakemake.input.get("features"),
        explanations=snakemake.input.get("explanations"),
        debates=snakemake.input.get("debates"),
        consultancy=snakemake.input.get("consultancy"),
        judge=snakemake.input.get("judge"),
        zero_shot=snakemake.input.get("zero_shot"),
    ),
    job=snakemake,
)
