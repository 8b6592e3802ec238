"""The default study's generation with and without prefix sharing, side by side.

Runs the study itself (Snakemake, the real rules, the default config/config.yaml) up to the
strong model's explanations and debates, twice in two folders: once with
`generation.share_prefixes: false`, once with the default `true`. For each it reports, per stage,
the jobs' wall time (their `benchmark:` files) and what the engine computed (the `engine
counters` lines the generation jobs log): prompt tokens, tokens run through prefill (padding
included), decode steps. Then the ratios, and how many generated texts differ between the runs.

    .venv/bin/python bench/prefix_sharing.py                 # the default study (~8 min)
    .venv/bin/python bench/prefix_sharing.py --config config/cpu-study.yaml

Writes bench/records/prefix_sharing.json (committed) and prints a table. The runs go one after
the other, so nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from w2s_eda.models import cpu_has_native_bf16  # noqa: E402
from w2s_eda.study import Study, path, validate_config  # noqa: E402
from w2s_eda.timings import stage_times  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
GENERATION_STAGES = ("explain_shard", "debate_round", "debate")


def targets(config: dict) -> list[str]:
    study = Study(validate_config(config))
    out = []
    for cell in study.cells:
        values = cell.values()
        keys = {k: values[k] for k in ("dataset", "seed", "strong")}
        out += [path("explanations", **keys), path("debates", **keys)]
    return sorted(set(out))


def run(workdir: Path, config: dict) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "resources").exists():
        (workdir / "resources").symlink_to(REPO / "resources")
    config_path = workdir / "study.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [SNAKEMAKE, *targets(config), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--cores", "all", "--configfile", str(config_path)]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, text=True, capture_output=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        (workdir / "snakemake.log").write_text(result.stdout + result.stderr)
        raise SystemExit(f"snakemake failed; see {workdir / 'snakemake.log'}")
    timed = workdir / "wall_s.txt"  # a rerun that finds everything done keeps the first run's
    if "Nothing to be done" in result.stdout + result.stderr and timed.exists():
        return float(timed.read_text())
    (workdir / "snakemake.log").write_text(result.stdout + result.stderr)
    timed.write_text(f"{seconds:.1f}\n")
    return seconds


def counters(workdir: Path) -> dict[str, dict]:
    """The engine counters the generation jobs logged, summed per rule."""
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for rule in GENERATION_STAGES:
        for log in (workdir / "results/logs" / rule).glob("*.log"):
            for line in log.read_text().splitlines():
                if "engine counters " in line:
                    record = json.loads(line.split("engine counters ", 1)[1])
                    record.pop("stage")
                    for key, value in record.items():
                        totals[rule][key] += value
    return {rule: dict(values) for rule, values in totals.items()}


def texts(workdir: Path, config: dict) -> dict[str, str]:
    out = {}
    for target in targets(config):
        frame = pd.read_parquet(workdir / target)
        if "explanation" in frame:
            out.update({f"explain/{i}": t for i, t in zip(frame["id"], frame["explanation"])})
        else:
            for item, sample, turns in zip(frame["id"], frame["sample"], frame["turns"]):
                for turn in (json.loads(turns) if isinstance(turns, str) else turns):
                    key = f"debate/{item}/{sample}/r{turn['round']}/d{turn['debater']}"
                    out[key] = turn["text"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/w2s-prefix-sharing"))
    parser.add_argument("--json", type=Path, default=REPO / "bench/records/prefix_sharing.json")
    args = parser.parse_args()

    base = yaml.safe_load(args.config.read_text())
    figures: dict = {
        "config": str(args.config.relative_to(REPO)) if args.config.is_absolute() else str(args.config),
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "native_bf16": cpu_has_native_bf16(),
                    "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA")},
        "runs": {},
    }
    outputs = {}
    for name, share in (("off", False), ("on", True)):
        config = {**base, "generation": {**base.get("generation", {}), "share_prefixes": share},
                  "wandb": {"mode": "disabled"}}
        workdir = args.workdir / name
        print(f"share_prefixes {share}: running in {workdir} ...", flush=True)
        seconds = run(workdir, config)
        stages = {rule: stage for rule, stage in stage_times(workdir).items()
                  if rule in GENERATION_STAGES}
        figures["runs"][name] = {"wall_s": round(seconds, 1), "stages": stages,
                                 "engine": counters(workdir)}
        outputs[name] = texts(workdir, config)

    off, on = figures["runs"]["off"], figures["runs"]["on"]
    lines = [f"{'stage':<14} {'':>4} {'prompt tok':>10} {'prefill tok':>11} {'decode tok':>10} "
             f"{'prefill s':>9} {'decode s':>8} {'job s':>7}"]
    ratios = {}
    for rule in GENERATION_STAGES:
        for name, figures_run in (("off", off), ("on", on)):
            engine = figures_run["engine"].get(rule, {})
            stage = figures_run["stages"].get(rule, {})
            lines.append(
                f"{rule:<14} {name:>4} {engine.get('prompt_tokens', 0):>10.0f} "
                f"{engine.get('prefill_tokens', 0):>11.0f} {engine.get('decode_tokens', 0):>10.0f} "
                f"{engine.get('prefill_seconds', 0):>9.1f} {engine.get('decode_seconds', 0):>8.1f} "
                f"{stage.get('seconds', 0):>7.1f}")
        if off["engine"].get(rule, {}).get("prefill_tokens") and on["engine"].get(rule):
            ratios[rule] = {
                "prefill_tokens_off_over_on": off["engine"][rule]["prefill_tokens"]
                / on["engine"][rule]["prefill_tokens"],
                "prefill_seconds_off_over_on": off["engine"][rule]["prefill_seconds"]
                / max(1e-9, on["engine"][rule]["prefill_seconds"]),
                "job_seconds_off_over_on": off["stages"][rule]["seconds"]
                / on["stages"][rule]["seconds"],
            }
    figures["ratios"] = ratios
    differing = sorted(key for key in outputs["off"] if outputs["off"][key] != outputs["on"].get(key))
    figures["texts"] = {"compared": len(outputs["off"]), "differ": len(differing),
                        "examples": differing[:10]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print("\n".join(lines))
    for rule, ratio in ratios.items():
        print(f"{rule}: {ratio['prefill_tokens_off_over_on']:.2f}x fewer prefill tokens, "
              f"prefill {ratio['prefill_seconds_off_over_on']:.2f}x faster, "
              f"jobs {ratio['job_seconds_off_over_on']:.2f}x faster")
    print(f"generation up to the debates: {off['wall_s']:.0f} s without sharing, "
          f"{on['wall_s']:.0f} s with")
    print(f"texts: {len(differing)} of {len(outputs['off'])} differ between the runs")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
