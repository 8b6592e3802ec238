"""Leakage and seeds, on what the real workflow writes: no test item reaches a training split (by
content hash of the normalised text), and a different seed gives different splits.

The rest of this catalogue lives beside the code it checks:
- no prompt for a w2s_train or test item holds anything derived from its gold label:
  tests/test_strong_signals.py::test_flipping_every_label_leaves_every_prompt_byte_identical
  (every explain, debate and judge prompt is byte-identical with every label flipped);
- the same seed gives byte-identical results: the small study runs three times (uninterrupted,
  through SLURM, killed in every heavy stage) and every result file, summary.csv included, must be
  equal (tests/test_slurm_cluster.py, tests/test_kill_and_resume.py);
- a different seed trains differently: tests/test_align.py::test_probe_learns_and_same_seed_gives_identical_predictions.
"""

import pandas as pd
import pytest

from conftest import balanced_rows, run_snakemake, study_args, write_jsonl
from w2s_eda.data.items import content_hash

pytestmark = pytest.mark.slow

SPLITS = ("weak_train", "w2s_train", "test")


def _hashes(folder, seed) -> dict[str, set[str]]:
    data = folder / f"results/mine/seed{seed}/data"
    return {split: {content_hash(text) for text in pd.read_parquet(data / f"{split}.parquet").text}
            for split in SPLITS}


def test_splits_are_disjoint_by_content_and_change_with_the_seed(tmp_path):
    rows = balanced_rows(30)
    # The same items again with other case and spacing: they must count as the same content.
    rows += [{"text": "  " + row["text"].upper() + " ", "label": row["label"]} for row in rows[:10]]
    data = write_jsonl(tmp_path / "mine.jsonl", rows)
    config = {"seeds": [0, 1], "splits": {"weak_train": 10, "w2s_train": 10, "test": 10},
              "datasets": {"mine": {"path": str(data)}}, "wandb": {"mode": "disabled"}}
    targets = [f"results/mine/seed{seed}/data/manifest.json" for seed in (0, 1)]
    result = run_snakemake(*targets, "--cores", "2", *study_args(tmp_path, config))
    assert result.returncode == 0, result.stderr[-3000:]
    by_seed = {seed: _hashes(tmp_path, seed) for seed in (0, 1)}
    for seed, hashes in by_seed.items():
        assert [len(hashes[split]) for split in SPLITS] == [10, 10, 10], seed
        training = hashes["weak_train"] | hashes["w2s_train"]
        assert not hashes["test"] & training and not hashes["weak_train"] & hashes["w2s_train"]
    assert all(by_seed[0][split] != by_seed[1][split] for split in SPLITS)
