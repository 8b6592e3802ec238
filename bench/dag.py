"""Time `snakemake -n` on a study sweep of over 1000 jobs (goal: at most 15 s).

The sweep: 4 BIG-bench datasets × 4 weak/strong pairs (the packaged models under two names each)
× 3 seeds × 5 arms × 3 losses. Nothing runs; only the DAG is built. Prints the job count and the
wall time of each of ``--repeats`` dry runs, and writes bench/results/dag.json.

    .venv/bin/python bench/dag.py
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SWEEP = {
    "seeds": [0, 1, 2],
    "datasets": {name: {} for name in ("epistemic_reasoning", "fever", "strategyqa", "sports_understanding")},
    "models": {
        "smollm2-a": {"packaged": "smollm2-135m-instruct"},
        "smollm2-b": {"packaged": "smollm2-135m-instruct"},
        "minilm-a": {"packaged": "all-minilm-l6-v2"},
        "minilm-b": {"packaged": "all-minilm-l6-v2"},
    },
    "pairs": [{"weak": w, "strong": s} for w in ("minilm-a", "minilm-b") for s in ("smollm2-a", "smollm2-b")],
    "train": {"strong": {"losses": ["xent", "logconf", "product"]}},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=str(REPO / "bench/results/dag.json"))
    args = parser.parse_args()
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "sweep.yaml"
        config.write_text(yaml.safe_dump(SWEEP))
        command = [snakemake, "-n", "-s", str(REPO / "Snakefile"), "-d", folder, "--configfile", str(config)]
        seconds, jobs = [], None
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            seconds.append(time.perf_counter() - started)
            jobs = int(re.search(r"^total\s+(\d+)", result.stdout, re.M).group(1))
    figures = {"jobs": jobs, "seconds": [round(s, 2) for s in seconds], "best_seconds": round(min(seconds), 2),
               "goal_seconds": 15}
    print(f"snakemake -n on a {jobs}-job sweep: " + ", ".join(f"{s:.1f} s" for s in seconds)
          + f" (best {min(seconds):.1f} s; goal <= 15 s)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
