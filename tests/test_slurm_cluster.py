"""A real SLURM: a one-node cluster on localhost (tests/slurm/start_local_slurm.sh) runs the small
study through profiles/slurm and the slurm executor plugin (sbatch, then srun with the jobstep
plugin inside each job). Every result equals the uninterrupted local run's, down to the last
float; only wall-clock figures differ. Both runs start in the background with the test session
(tests/studies.py); this test runs last and waits for them."""

import subprocess

import pytest

from studies import SCRIPT, SMALL_JOBS, assert_same_results

pytestmark = pytest.mark.slow


def test_small_study_through_slurm_equals_the_local_run(slurm_study, small_study):
    assert slurm_study.run, "the cluster did not start:\n" + slurm_study.start_output
    assert "SLURM up" in slurm_study.start_output
    again = subprocess.run([str(SCRIPT), "start", str(slurm_study.cluster)], capture_output=True,
                           text=True)
    assert again.returncode == 0 and "already running" in again.stdout, again.stderr  # idempotent

    code, stderr, seconds = slurm_study.run.wait()
    assert code == 0, f"the SLURM run failed (exit {code}) after {seconds:.0f} s:\n{stderr[-5000:]}"
    local_code, local_stderr, local_seconds = small_study.wait()
    assert local_code == 0, local_stderr[-5000:]
    print(f"wall time: SLURM run {seconds:.0f} s, local run {local_seconds:.0f} s (side by side)")

    folder = slurm_study.run.folder
    submitted = [line for line in stderr.splitlines() if "has been submitted with SLURM jobid" in line]
    assert len(submitted) == SMALL_JOBS - 1, stderr[-3000:]  # every job but the `all` target
    slurm_logs = folder / ".snakemake/slurm_logs"
    logs = {log.relative_to(slurm_logs).parts[0] for log in slurm_logs.rglob("*.log")}
    assert {"rule_explain_shard", "rule_train_student", "rule_analysis"} <= logs, logs
    # The scheduler ran the GPU rules in the gpu partition (one fake GPU each), the rest in cpu.
    jobs = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%P %j"], capture_output=True,
                          text=True, env={"SLURM_CONF": str(slurm_study.conf), "PATH": "/usr/bin:/bin"})
    partitions = [line.split()[0] for line in jobs.stdout.splitlines()]
    assert partitions.count("gpu") >= 10 and "cpu" in partitions, jobs.stdout + jobs.stderr

    assert_same_results(folder, small_study.folder)
