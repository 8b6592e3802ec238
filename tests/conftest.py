import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def balanced_rows(n_per_label: int, prefix: str = "item"):
    """Distinct texts, half labelled 1 and half 0."""
    return [
        {"text": f"{prefix} number {i} is {'even' if i % 2 else 'odd'}", "label": i % 2}
        for i in range(2 * n_per_label)
    ]


def run_snakemake(*args, cwd=REPO, timeout=300, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def shared_data():
    """The shared real-data folder beside the project (present in development and CI)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the project")
    return SHARED_DATA
