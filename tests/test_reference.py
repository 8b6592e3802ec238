"""The small study's numbers and texts equal committed reference files.

tests/studies.py's SMALL_CONFIG runs with the default settings (float32 on the CPU, greedy
generation, prefix sharing on, the default templates; only the sizes are small). Its summary.csv
and the strong model's texts (explanations, debate turns) must equal tests/reference/, so a
change of CPU, of torch or transformers, or of our own code that moves the study's results is
caught here, not noticed later in a table. The run is deterministic on one machine (byte-identical
reruns); across x86 CPUs float32 gives the same results, which is why `dtype: auto` never picks
bf16 on a CPU.

After an intended change of results, rewrite the references and commit them with the change:

    W2S_UPDATE_REFERENCE=1 .venv/bin/pytest tests/test_reference.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

REFERENCE = Path(__file__).resolve().parent / "reference"
SUMMARY = REFERENCE / "small_study_summary.csv"
TEXTS = REFERENCE / "small_study_texts.json"
CELL = "results/toy/seed0/smollm2-135m"
UPDATE = os.environ.get("W2S_UPDATE_REFERENCE") == "1"


def strong_texts(folder: Path) -> dict:
    explanations = pd.read_parquet(folder / CELL / "explanations.parquet").sort_values("id")
    debates = pd.read_parquet(folder / CELL / "debates.parquet").sort_values(["id", "sample"])
    return {
        "explanations": dict(zip(explanations["id"], explanations["explanation"])),
        "debates": {f"{item}/{sample}": [turn["text"] for turn in turns]
                    for item, sample, turns in zip(debates["id"], debates["sample"],
                                                   debates["turns"])},
        "dtype": sorted(set(explanations["dtype"]) | set(debates["dtype"])),
    }


@pytest.fixture(scope="module")
def finished(small_study):
    code, stderr, _ = small_study.wait()
    assert code == 0, stderr[-5000:]
    if UPDATE:
        SUMMARY.write_bytes((small_study.folder / "results/summary.csv").read_bytes())
        TEXTS.write_text(json.dumps(strong_texts(small_study.folder), indent=1, sort_keys=True)
                         + "\n")
    return small_study.folder


def test_the_strong_model_writes_the_reference_texts_in_float32(finished):
    reference = json.loads(TEXTS.read_text())
    ours = strong_texts(finished)
    assert ours["dtype"] == reference["dtype"] == ["float32"]
    changed = {key: (ours["explanations"].get(key), text)
               for key, text in reference["explanations"].items()
               if ours["explanations"].get(key) != text}
    assert not changed, f"explanations differ from {TEXTS.name} (ours, reference): {changed}"
    changed = {key: (ours["debates"].get(key), turns) for key, turns in reference["debates"].items()
               if ours["debates"].get(key) != turns}
    assert not changed, f"debate turns differ from {TEXTS.name} (ours, reference): {changed}"
    assert ours == reference


def test_the_summary_equals_the_reference(finished):
    ours = pd.read_csv(finished / "results/summary.csv")
    reference = pd.read_csv(SUMMARY)
    assert list(ours.columns) == list(reference.columns), "summary.csv's columns changed"
    assert len(ours) == len(reference)
    numeric = reference.select_dtypes("number").columns
    moved = [
        (row, column, ours.at[row, column], reference.at[row, column])
        for column in reference.columns for row in reference.index
        if not (pd.isna(ours.at[row, column]) and pd.isna(reference.at[row, column]))
        and (abs(ours.at[row, column] - reference.at[row, column]) > 1e-6 if column in numeric
             else ours.at[row, column] != reference.at[row, column])
    ]
    assert not moved, (f"summary.csv differs from {SUMMARY.name} in {len(moved)} cells "
                       f"(row, column, ours, reference): {moved[:20]}")
