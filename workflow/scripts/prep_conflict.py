import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from w2s_eda.logs import run_stage
from w2s_eda.prep import prepare_conflict

run_stage(
    lambda: prepare_conflict(
        dataset=snakemake.wildcards.dataset,
        spec=snakemake.params.spec,
        n_items=snakemake.params.n_items,
        seed=int(snakemake.wildcards.seed),
        split_paths={split: snakemake.input[split] for split in ("weak_train", "w2s_train", "test")},
        output=snakemake.output.conflict,
    ),
    job=snakemake,
)
