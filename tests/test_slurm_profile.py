"""The SLURM profile, dry-run where no SLURM is installed: every job gets memory and a runtime,
the GPU rules one GPU each. (The real-SLURM run: tests/test_slurm_cluster.py, docs/cluster.md.)"""

import os
import re
import sys
from pathlib import Path

from conftest import REPO, run_snakemake

GPU_RULES = {"explain_shard", "zero_shot", "debate_round", "debate", "weak_features",
             "weak_features_strong", "strong_features", "train_weak", "train_weak_strong",
             "train_ceiling", "train_student", "train_self_distill"}
# The GPU rules of the deception settings (conflict.settings, pairs[].intermediate).
DECEPTION_GPU_RULES = {"intermediate_features", "train_intermediate", "train_student_setting"}


def _jobs(output: str) -> list[tuple[str, dict | None]]:
    """(rule, resources) of every job of a dry run; a job printed as its `message:` (prep, which
    names its data source) shows no resources: None."""
    jobs = []
    for rule, resources in re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", output, re.M):
        jobs.append((rule, dict(item.split("=", 1) for item in resources.split(", "))))
    jobs += [("prep", None) for _ in re.findall(r"^Job \d+: prep \S+ seed \d+ from ", output, re.M)]
    return jobs


SLURM_COMMANDS = {"sbatch", "squeue", "sacct", "scancel", "sinfo", "srun", "scontrol", "salloc"}


def _path_without_slurm(folder: Path) -> str:
    """A PATH with every command of the current one except SLURM's (linked into ``folder``)."""
    for directory in [str(Path(sys.executable).parent), *os.environ["PATH"].split(os.pathsep)]:
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = folder / entry.name
            if entry.name not in SLURM_COMMANDS and not target.exists():
                target.symlink_to(entry.path)
    return str(folder)


def test_slurm_profile_dry_runs_without_slurm_and_sizes_every_job(tmp_path):
    env_path = _path_without_slurm(tmp_path)
    assert not any((Path(env_path) / command).exists() for command in SLURM_COMMANDS)
    result = run_snakemake("-n", "--forceall", "--workflow-profile", "profiles/slurm",
                           env_extra={"PATH": env_path})
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _jobs(result.stdout)
    total = int(re.search(r"^total\s+(\d+)", result.stdout, re.M).group(1))
    assert len(jobs) == total
    jobs = [(rule, resources) for rule, resources in jobs if rule != "all"]  # runs nothing
    rules = {rule for rule, _ in jobs}
    assert GPU_RULES <= rules and "prepare_model" in rules and "analysis" in rules
    # the default study's two prep jobs (one per dataset) run locally
    assert {rule for rule, resources in jobs if resources is None} == {"prep"}
    jobs = [(rule, resources) for rule, resources in jobs if resources is not None]
    for rule, resources in jobs:
        assert int(resources["mem_mb"]) >= 2000 and int(resources["runtime"]) >= 30, rule
        if rule in GPU_RULES:
            assert resources.get("gpu") == "1" and resources.get("slurm_partition") == "gpu", rule
        else:
            assert "gpu" not in resources, rule


def test_every_profile_entry_is_commented():
    lines = (REPO / "profiles/slurm/config.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        top_level = re.match(r"^[a-z-]+:", line)
        if top_level:
            assert lines[i - 1].startswith("#"), f"profiles/slurm/config.yaml: '{line}' has no comment"


def test_slurm_profile_sizes_the_deception_studys_jobs(tmp_path):
    """config/hh-deception.yaml's rules (conflict settings, an intermediate chain) get a GPU where
    the profile says, and the implicit setting's data prep none."""
    env_path = _path_without_slurm(tmp_path)
    result = run_snakemake("-n", "--forceall", "--workflow-profile", "profiles/slurm",
                           "--configfile", "config/hh-deception.yaml", env_extra={"PATH": env_path})
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [(rule, resources) for rule, resources in _jobs(result.stdout) if resources is not None]
    rules = {rule for rule, _ in jobs}
    assert DECEPTION_GPU_RULES | {"prep_conflict"} <= rules
    for rule, resources in jobs:
        if rule in GPU_RULES | DECEPTION_GPU_RULES:
            assert resources.get("gpu") == "1" and resources.get("slurm_partition") == "gpu", rule
        else:
            assert "gpu" not in resources, rule
