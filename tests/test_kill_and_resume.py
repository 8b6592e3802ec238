"""Kill and resume through Snakemake: the small study (tests/studies.py) with a job killed with
SIGKILL in each heavy stage (explain, debate, weak training, strong training), each time once the
stage has saved a chunk or checkpoint, then rerun with --rerun-incomplete. The study completes
with results equal to the uninterrupted run's, and what the killed jobs had saved is reused, not
recomputed (chunk files keep their mtimes; the job logs say what was reused or resumed).

The window to kill a job in comes from tests/fault_injection/sitecustomize.py, not from the
package: the killed runs get that folder on PYTHONPATH, so every Python process of the run (the
workflow's scripts inherit the environment) sleeps W2S_TEST_PAUSE_AFTER_FIRST_SAVE seconds after
its first chunk or checkpoint lands (the os.replace that ends w2s_eda.io.atomic_path).

The runs go in a thread (conftest.py's ``killed_study``) that starts in the background once the
tiny study has run, beside the rest of the suite; the test waits for it and checks what it gave."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from conftest import JOB_THREADS, study_args
from studies import Run, assert_same_results

pytestmark = pytest.mark.slow

CELL = "results/toy/seed0/smollm2-135m"
# The baseline arm's weak model reads no strong signal: it is shared by the strong models, and
# sits beside them, not under one (the `train_weak` rule; `train_weak_strong` trains the others).
WEAK_SHARED = "results/toy/seed0/weak/minilm-l6"
FAULT_INJECTION = Path(__file__).resolve().parent / "fault_injection"
# The killed runs import FAULT_INJECTION/sitecustomize.py, which makes each process sleep this
# many seconds after its first saved chunk or checkpoint: the window to kill the job in.
PAUSE = {
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(FAULT_INJECTION), os.environ.get("PYTHONPATH")])),
    "W2S_TEST_PAUSE_AFTER_FIRST_SAVE": "3",
}

# (stage, the rule whose job is killed and its script, the targets of that run, what the job
# saves as it goes)
STAGES = [
    ("explain", "explain_shard", "explain_shard", [f"{CELL}/explanations.parquet"],
     f"{CELL}/explain/chunks/chunk-*.json"),
    ("debate", "debate_round", "debate_round", [f"{CELL}/debates.parquet"],
     f"{CELL}/debate/round1/chunks/*/chunk-*.json"),
    ("weak training", "train_weak", "train_weak",
     [f"{WEAK_SHARED}/baseline/test_predictions.parquet"],
     f"{WEAK_SHARED}/*/checkpoints/member*/step*.pt"),
    ("strong training", "train_ceiling", "train_strong", [f"{CELL}/ceiling/test_predictions.parquet"],
     f"{CELL}/ceiling/checkpoints/step*.pt"),
]


def _job_pids(script: str, workdir: Path) -> list[int]:
    """Processes running a workflow script (Snakemake runs `.snakemake/scripts/tmpXXXX.<script>.py`)
    in ``workdir`` (not those of other studies running beside this one)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd == workdir and any(arg.endswith(f".{script}.py".encode()) for arg in argv):
                pids.append(int(entry.name))
    return pids


def _kill_when_saved(run: Run, rule: str, script: str, pattern: str) -> dict[str, int]:
    """SIGKILL the rule's job once it has saved something matching ``pattern``; returns what it
    had saved, with mtimes."""
    deadline = time.monotonic() + 300
    while not (saved := list(run.folder.glob(pattern))):
        assert run.process.poll() is None, f"the run ended before {rule} saved anything:\n" + \
            (run.folder / "snakemake.err").read_text()[-3000:]
        assert time.monotonic() < deadline, f"{rule} saved nothing in 300 s"
        time.sleep(0.05)
    pids = _job_pids(script, run.folder)
    assert pids, f"no process runs {rule}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return {str(path.relative_to(run.folder)): path.stat().st_mtime_ns for path in saved}


def _log(folder: Path, rule: str) -> str:
    return "\n".join(path.read_text() for path in sorted((folder / "results/logs" / rule).glob("*.log")))


def _kill_and_resume(folder: Path, config: dict, runs: list) -> dict:
    """The runs with a job killed in each stage, then the final run: what the test checks. Each
    run is appended to ``runs`` as it starts (to be killed if the session ends first)."""
    # One thread per job, as the reference ran: float results are equal bit for bit only at
    # the same thread count (summary.csv agrees within 1e-6 across 1 and 2; bench/cpu_isa.py).
    args = [*study_args(folder, config), "--cores", "2", *JOB_THREADS, "--rerun-incomplete"]
    killed, kept = [], {}
    for stage, rule, script, targets, pattern in STAGES:
        # Targets go before the arguments (--configfile takes several values).
        run = Run.start(folder, [*targets, *args], env=PAUSE)
        runs.append(run)
        try:
            saved = _kill_when_saved(run, rule, script, pattern)
        except BaseException:
            run.kill()
            raise
        code, stderr, _ = run.wait()
        # no declared output of the killed stage may exist, half-written or not
        killed.append((stage, rule, code, stderr, [t for t in targets if (folder / t).exists()]))
        if rule in ("explain_shard", "debate_round"):
            kept.update(saved)  # chunks stay after success; checkpoints are deleted then
    final = Run.start(folder, args)
    runs.append(final)
    return {"killed": killed, "kept": kept, "final": final.wait()}


def test_a_job_killed_in_each_heavy_stage_resumes_to_the_uninterrupted_results(
        killed_study, small_study):
    folder, thread, outcome = killed_study
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value = outcome["value"]
    for stage, rule, code, stderr, left in value["killed"]:
        assert code != 0 and f"Error in rule {rule}" in stderr, f"{stage}: {stderr[-3000:]}"
        assert not left, left
    code, stderr, _ = value["final"]
    assert code == 0, stderr[-5000:]
    # Each killed job ran once more, after its kill; its log is that run's.
    for rule in ("explain_shard", "debate_round"):
        assert "1 reused" in _log(folder, rule), _log(folder, rule)
    for rule in ("train_weak", "train_ceiling"):
        assert "resumed from checkpoint" in _log(folder, rule), _log(folder, rule)
    for path, mtime in value["kept"].items():  # saved chunks were reused as they were
        assert (folder / path).stat().st_mtime_ns == mtime, path

    reference_code, reference_stderr, _ = small_study.wait()
    assert reference_code == 0, reference_stderr[-5000:]
    assert_same_results(folder, small_study.folder)
