"""Where a finished study's time went: stage by stage, from the `benchmark:` file every rule
writes (results/benchmarks/<rule>/*.tsv, first column: seconds), and the workflow's own elapsed
time from Snakemake's newest complete run log. `make run` prints this table at the end;
bench/pipeline.py records it.

    python -m w2s_eda.timings [study folder]
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path


def stage_times(workdir: str | Path = ".") -> dict[str, dict]:
    """{rule: {"jobs": n, "seconds": total, "max": longest job}}, longest stage first."""
    stages: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "max": 0.0})
    for path in sorted(Path(workdir, "results/benchmarks").glob("*/*.tsv")):
        with path.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        seconds = float(row["s"])
        stage = stages[path.parent.name]
        stage["jobs"] += 1
        stage["seconds"] = round(stage["seconds"] + seconds, 2)
        stage["max"] = max(stage["max"], seconds)
    return dict(sorted(stages.items(), key=lambda item: -item[1]["seconds"]))


def last_elapsed(workdir: str | Path = ".") -> float | None:
    """Snakemake's 'Elapsed time' of the newest run log that finished every step."""
    for log in sorted(Path(workdir, ".snakemake/log").glob("*.snakemake.log"), reverse=True):
        text = log.read_text(errors="replace")
        found = re.search(r"Elapsed time: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
        if found and "(100%) done" in text:
            h, m, s = found.groups()
            return int(h) * 3600 + int(m) * 60 + float(s)
    return None


def generation_dtypes(workdir: str | Path = ".") -> list[str]:
    """The dtypes the strong model generated in, from the studies' explain/debate stats."""
    found = set()
    for name in ("explain_stats.json", "zero_shot_stats.json"):
        for path in Path(workdir, "results").glob(f"*/seed*/*/{name}"):
            found.add(json.loads(path.read_text()).get("dtype", "?"))
    return sorted(found)


def table(workdir: str | Path = ".") -> str:
    stages = stage_times(workdir)
    lines = [f"{'stage':<22} {'jobs':>4} {'total s':>8} {'longest s':>10}"]
    for rule, stage in stages.items():
        lines.append(f"{rule:<22} {stage['jobs']:>4} {stage['seconds']:>8.1f} {stage['max']:>10.1f}")
    total = sum(stage["seconds"] for stage in stages.values())
    lines.append(f"{'sum of jobs':<22} {sum(s['jobs'] for s in stages.values()):>4} {total:>8.1f}")
    elapsed = last_elapsed(workdir)
    if elapsed is not None:
        lines.append(f"workflow wall time {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    dtypes = generation_dtypes(workdir)
    if dtypes:
        lines.append(f"strong model dtype: {', '.join(dtypes)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "."))
