import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.align import train_strong
from w2s_eda.logs import run_stage

run_stage(
    lambda: train_strong(
        role=snakemake.params.role,
        split_paths=snakemake.params.splits,
        model_dir=snakemake.params.model_dir,
        train=snakemake.params.train,
        loss=snakemake.params.loss,
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        dtype=snakemake.params.dtype,
        outputs=dict(snakemake.output.items()),
        features=snakemake.input.get("features"),
        soft_labels=snakemake.input.get("soft_labels"),
        arm=snakemake.params.get("arm", snakemake.wildcards.get("arm")),
        conflict=snakemake.params.get("conflict"),
    ),
    job=snakemake,
)
