"""Wall time of the default study, stage by stage, and of a no-op rerun (goals: <= 10 min and
<= 3 s on 2 cores).

Stage times come from the `benchmark:` files every rule writes (results/benchmarks/<rule>/*.tsv,
first column: seconds; read by w2s_eda.timings, which `make run` prints too). "Workflow" is Snakemake's own elapsed time for the run. The no-op rerun
is `snakemake --cores all` once everything is up to date: it must only build the DAG.

    .venv/bin/python bench/pipeline.py           # the study already run here (`make run`)
    .venv/bin/python bench/pipeline.py --fresh   # first run it from nothing in a temporary folder

Prints a table and writes bench/records/pipeline.json (committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from w2s_eda.timings import last_elapsed, stage_times  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run([SNAKEMAKE, "--cores", "all", "-d", str(workdir), *args], cwd=REPO,
                            capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", action="store_true",
                        help="run the default study from nothing in a temporary folder first")
    parser.add_argument("--keep", type=Path, default=None,
                        help="with --fresh: run in this (new) folder and keep it, to read its results")
    parser.add_argument("--json", type=Path, default=REPO / "bench/records/pipeline.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="w2s-pipeline-") as tmp:
        workdir = Path(tmp) if args.fresh else REPO
        if args.fresh and args.keep:
            if args.keep.exists():
                raise SystemExit(f"{args.keep} exists: --keep needs a new folder")
            workdir = args.keep
        fresh_s = None
        if args.fresh:
            print(f"running the default study from nothing in {workdir} ...", flush=True)
            fresh_s, _ = snakemake(workdir)
        if not (workdir / "results/summary.csv").exists():
            raise SystemExit("no finished study here: run `make run` first, or pass --fresh")
        noop_s, output = snakemake(workdir)
        if "Nothing to be done" not in output:
            raise SystemExit("the rerun was not a no-op: the study here is not up to date\n"
                             + output[-2000:])
        stages, workflow_s = stage_times(workdir), last_elapsed(workdir)

    print(f"default study on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    print(f"{'stage':<18} {'jobs':>4} {'total s':>8} {'longest s':>10}")
    for rule, stage in sorted(stages.items(), key=lambda item: -item[1]["seconds"]):
        print(f"{rule:<18} {stage['jobs']:>4} {stage['seconds']:>8.1f} {stage['max']:>10.1f}")
    total = sum(stage["seconds"] for stage in stages.values())
    print(f"{'sum of jobs':<18} {sum(s['jobs'] for s in stages.values()):>4} {total:>8.1f}")
    if workflow_s is not None:
        print(f"workflow wall time {workflow_s:.0f} s (goal <= 600 s)"
              + (f"; whole fresh run {fresh_s:.0f} s" if fresh_s else ""))
    print(f"no-op rerun        {noop_s:.2f} s (goal <= 3 s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "cpus": os.cpu_count(), "stages": stages, "sum_of_jobs_s": round(total, 1),
        "workflow_s": workflow_s, "fresh_run_s": fresh_s, "noop_rerun_s": round(noop_s, 2),
    }, indent=2) + "\n")
    print(f"wrote {args.json.relative_to(REPO)}")


if __name__ == "__main__":
    main()
