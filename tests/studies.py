"""Whole-study runs that tests compare against each other, started in the background.

The small study (SMALL_CONFIG) runs once, uninterrupted and locally, as the reference. The real-
SLURM test runs it again through a one-node SLURM on localhost (tests/slurm/start_local_slurm.sh,
profiles/slurm, the slurm executor plugin); the kill-and-resume test runs it again with a job
killed in each heavy stage. Both must give the reference's results. conftest.py starts these runs
in the background, the reference and SLURM runs when the session starts (the SLURM run spends
most of its time waiting between scheduler polls), the killed ones once the tiny study has run;
their tests run last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from conftest import JOB_THREADS, REPO, SNAKEMAKE, TEXTS, study_args

SCRIPT = REPO / "tests/slurm/start_local_slurm.sh"

# The smallest study with every stage: explanations (3 chunks), a debate round, the weak floor and
# the eda arm (both contexts), the strong ceiling, two students, the analysis, and the item
# prefixes the strong stages share. 17 jobs.
SMALL_CONFIG = {
    "splits": {"weak_train": 4, "w2s_train": 4, "test": 4},
    "generation": {"chunk_size": 4},
    "explain": {"max_new_tokens": 4},
    "debate": {"max_new_tokens": 4, "n_rounds": 1, "drift_sample": 0},
    "align": {"arms": ["baseline", "eda"], "controls": []},  # controls: the tiny study's
    "train": {"weak": {"epochs": 2, "batch_size": 2, "checkpoint_every": 1},
              "strong": {"epochs": 2, "batch_size": 2, "checkpoint_every": 1, "losses": ["xent"]}},
    "analysis": {"n_bootstrap": 100},
    "wandb": {"mode": "disabled"},
}
SMALL_JOBS = 17  # including the `all` target

# A run that takes longer is killed (SIGKILL: a stuck SLURM status poll does not answer SIGTERM).
RUN_LIMIT_S = 900

# What the local node can give: profiles/slurm asks for cluster-sized memory and CPUs per GPU.
LOCAL_SIZES = {"mem_mb": "500 * attempt", "cpus_per_gpu": 1}
# No accounting database here: poll with squeue (the cluster keeps finished jobs an hour, and the
# test reads squeue again at the end of the session), and soon; keep the SLURM logs to check
# them; fail at once rather than retry. (No account: the plugin then warns that it cannot guess
# one and submits without.)
LOCAL_SETTINGS = {"slurm-status-command": "squeue", "slurm-keep-successful-logs": True,
                  "slurm-init-seconds-before-status-checks": 2, "retries": 0, "latency-wait": 5,
                  "jobs": 4}


def local_profile(folder: Path) -> Path:
    """profiles/slurm with only LOCAL_SIZES and LOCAL_SETTINGS changed: the same executor,
    partitions (`cpu`, `gpu`) and GPU requests reach the scheduler."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        for key, value in LOCAL_SIZES.items():
            if key in resources or key == "mem_mb":
                resources[key] = value
    profile.update(LOCAL_SETTINGS)
    profile.pop("configfile")  # the tests pass their own
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def small_study_folder(root: Path, name: str, prepared_models: Path) -> tuple[Path, dict]:
    """A study folder with the models linked in, and SMALL_CONFIG on the data file in ``root``
    (one file for every run: its path is part of the results)."""
    data = root / "items.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps({"text": t, "label": int(t.startswith("Premise: Ann"))})
                                + "\n" for t in TEXTS))
    folder = root / name
    (folder / "resources").mkdir(parents=True)
    (folder / "resources/models").symlink_to(prepared_models)
    return folder, {**SMALL_CONFIG, "datasets": {"toy": {"path": str(data)}}}


@dataclass
class Run:
    """One Snakemake run in the background; its output goes to snakemake.{out,err} in its folder."""
    folder: Path
    process: subprocess.Popen
    started: float

    @classmethod
    def start(cls, folder: Path, args: list[str], env: dict | None = None) -> "Run":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", **(env or {})}
        command = ["timeout", "-s", "KILL", str(RUN_LIMIT_S), SNAKEMAKE, *args]
        with open(folder / "snakemake.out", "w") as out, open(folder / "snakemake.err", "w") as err:
            process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err, env=env,
                                       start_new_session=True)
        return cls(folder, process, time.time())

    def wait(self) -> tuple[int, str, float]:
        """Exit status, stderr, and the wall time in seconds (to the last line it wrote)."""
        code = self.process.wait()
        err = self.folder / "snakemake.err"
        return code, err.read_text(), err.stat().st_mtime - self.started

    def kill(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_small_study(root: Path, prepared_models: Path) -> Run:
    folder, config = small_study_folder(root, "reference", prepared_models)
    return Run.start(folder, [*study_args(folder, config), "--cores", "2", *JOB_THREADS])


class SlurmStudy:
    """The local SLURM cluster and the small study run through it. `start` returns at once;
    `stop` kills the run if it still runs and stops the cluster."""

    def __init__(self, root: Path, prepared_models: Path):
        self.root, self.prepared_models = root, prepared_models
        self.cluster = root / "cluster"
        self.conf = self.cluster / "slurm.conf"
        self.run: Run | None = None
        self.start_output = ""

    def start(self):
        started = subprocess.run(["timeout", "-s", "KILL", "300", str(SCRIPT), "start",
                                  str(self.cluster)], capture_output=True, text=True)
        self.start_output = started.stdout + started.stderr
        if started.returncode == 0:
            folder, config = small_study_folder(self.root, "slurm", self.prepared_models)
            profile = local_profile(self.root / "profile")
            self.run = Run.start(folder, [*study_args(folder, config), *JOB_THREADS,
                                          "--workflow-profile", str(profile)],
                                 env={"SLURM_CONF": str(self.conf)})

    def stop(self) -> subprocess.CompletedProcess:
        if self.run:
            self.run.kill()
        return subprocess.run([str(SCRIPT), "stop", str(self.cluster)], capture_output=True,
                              text=True)


# Figures of one run's history, not of its results: wall-clock times, and the step a training
# job resumed from. Everything else must be equal between runs.
RUN_HISTORY = {"seconds", "examples_per_second", "tokens_per_second", "resumed_from_step"}


def _without_history(value):
    if isinstance(value, dict):
        return {key: _without_history(item) for key, item in value.items() if key not in RUN_HISTORY}
    if isinstance(value, list):
        return [_without_history(item) for item in value]
    return value


def _parsed(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _content(path: Path):
    """A result file's content, comparable across runs: tables and JSON without RUN_HISTORY
    fields, arrays by value (an .npz's zip headers hold the time of writing), the rest as bytes."""
    if path.suffix == ".json":
        return _without_history(json.loads(path.read_text()))
    if path.suffix == ".parquet":  # cells may hold JSON (a debate's turns, with their timings)
        rows = json.loads(pd.read_parquet(path).to_json(orient="records", double_precision=15))
        return _without_history([{key: _parsed(value) for key, value in row.items()} for row in rows])
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            return {key: arrays[key].tolist() for key in arrays.files}
    return path.read_bytes()


def results(folder: Path) -> dict:
    """Every file under results/ but logs and benchmark timings, by _content."""
    root = folder / "results"
    return {path.relative_to(root).as_posix(): _content(path) for path in sorted(root.rglob("*"))
            if path.is_file() and path.relative_to(root).parts[0] not in {"logs", "benchmarks"}}


def assert_same_results(ours: Path, reference: Path):
    theirs, mine = results(reference), results(ours)
    assert {"summary.csv", "pgr.json", "deception.json", "toy/seed0/smollm2-135m/debates.parquet",
            "toy/seed0/smollm2-135m/w2s/minilm-l6/eda/xent/test_predictions.parquet"} <= set(theirs)
    assert sorted(mine) == sorted(theirs)
    assert [path for path in theirs if mine[path] != theirs[path]] == []
