import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.prep import prepare

run_stage(
    lambda: prepare(
        name=snakemake.wildcards.dataset,
        spec=snakemake.params.spec,
        sizes=snakemake.params.sizes,
        seed=int(snakemake.wildcards.seed),
        outputs={split: snakemake.output[split] for split in ("weak_train", "w2s_train", "test")},
        manifest_path=snakemake.output.manifest,
        bigbench_file=snakemake.input.get("bigbench"),
    ),
    job=snakemake,
)
