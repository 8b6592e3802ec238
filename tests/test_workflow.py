"""The Snakemake workflow itself: dry runs, a real prep run, and bad input stopping the run early."""

import json
import re

import pytest
import yaml

from conftest import REPO, balanced_rows, run_snakemake, write_jsonl


def study(tmp_path, config) -> list[str]:
    """Arguments that run the repository's workflow on ``config`` inside ``tmp_path``.

    They end with ``--configfile``, which takes several values: put any target before them."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return ["-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile", str(path)]


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    lines = output.split("Job stats:")[1].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


# One cell's align jobs with the default 5 arms and 2 losses: the 5 arms read 4 input layouts
# (baseline and distill both read the item only, which no strong model changes: weak_features);
# baseline alone reads nothing of the strong model (train_weak; the other four train_weak_strong).
# The strong features, the ceiling and the weak floor are shared by every student; the
# self-distillation control trains one strong student per loss.
ALIGN_JOBS = {"weak_features": 1, "weak_features_strong": 3, "train_weak": 1,
              "train_weak_strong": 4, "strong_features": 1, "train_ceiling": 1,
              "train_student": 10, "train_self_distill": 2, "cell_table": 1}


# The default study's W2S cell (`winowhy`, baseline arm, no controls): its own prep, features,
# floor, ceiling and two students, and nothing generated.
BASELINE_CELL_JOBS = {"prep": 1, "weak_features": 1, "train_weak": 1, "strong_features": 1,
                      "train_ceiling": 1, "train_student": 2, "cell_table": 1}


def test_default_config_dry_run():
    # config/config.yaml: the EDA cell (`winowhy_eda`) runs the EDA ablation without `distill`
    # (one arm and its two students fewer than the schema's default arms) beside the baseline
    # cell; both read one BIG-bench file.
    result = run_snakemake("-n", "--forceall")
    assert result.returncode == 0, result.stderr
    eda_cell = {"download_bigbench": 1, "prep": 1, "prepare_model": 2, "item_prefixes": 1,
                "explain_shard": 1,
                "explain": 1, "zero_shot": 1, "debate_round": 2, "debate": 1, "all": 1,
                "analysis": 1, **ALIGN_JOBS, "train_weak_strong": 3, "train_student": 8}
    assert job_counts(result.stdout) == {
        rule: eda_cell.get(rule, 0) + BASELINE_CELL_JOBS.get(rule, 0)
        for rule in {**eda_cell, **BASELINE_CELL_JOBS}}


def test_two_datasets_two_seeds_dry_run(tmp_path):
    data = write_jsonl(tmp_path / "local.jsonl", balanced_rows(30))
    config = {
        "seeds": [0, 1],
        "datasets": {"mine": {"path": str(data)}, "epistemic_reasoning": {}},
    }
    result = run_snakemake("-n", *study(tmp_path, config))
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout) == {
        "prep": 4, "download_bigbench": 1, "prepare_model": 2, "item_prefixes": 4,
        "explain_shard": 4, "explain": 4,
        "zero_shot": 4, "debate_round": 8, "debate": 4, "all": 1, "analysis": 1,  # one analysis
        **{rule: 4 * count for rule, count in ALIGN_JOBS.items()}}


@pytest.mark.slow
def test_prep_runs_for_real_on_a_local_file(tmp_path):
    data = write_jsonl(tmp_path / "local.jsonl", balanced_rows(30))
    config = {"splits": {"weak_train": 10, "w2s_train": 10, "test": 10},
              "datasets": {"mine": {"path": str(data)}}}
    target = "results/mine/seed0/data/manifest.json"  # prep alone; other tests run the models
    result = run_snakemake(target, "--cores", "1", *study(tmp_path, config))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "results/mine/seed0/data/manifest.json").read_text())
    assert {split: stats["n"] for split, stats in manifest["splits"].items()} == {
        "weak_train": 10, "w2s_train": 10, "test": 10}
    log = (tmp_path / "results/logs/prep/mine_seed0.log").read_text()
    assert "weak_train: 10 items, 50% label 1" in log


def test_bad_config_stops_before_any_job(tmp_path):
    config = {"splits": {"test": -4}, "bogus": True}
    result = run_snakemake("--cores", "1", *study(tmp_path, config))
    assert result.returncode != 0
    assert "config key 'splits.test': -4 is less than the minimum of 2" in result.stderr
    assert "unknown config key 'bogus'" in result.stderr
    assert not (tmp_path / "results").exists()


def test_unknown_dataset_lists_known_names(tmp_path):
    result = run_snakemake("-n", *study(tmp_path, {"datasets": {"imagenet": {}}}))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "unknown dataset 'imagenet'. Known datasets: amazon_polarity, anthropic_hh" in output


def test_paper_config_dry_runs():
    """config/paper.yaml (hub datasets, two Qwen2.5 pairs, 3 seeds, sharded stages) builds its DAG
    offline, and every hub model is pinned to a commit."""
    result = run_snakemake("-n", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = job_counts(result.stdout)
    cells = 5 * 3 * 2  # datasets x seeds x pairs
    assert counts["prep"] == 15 and counts["prepare_model"] == 3
    assert counts["explain_shard"] == cells * 8 and counts["debate_round"] == cells * 3 * 8
    assert counts["consultancy_round"] == cells * 3 * 8 and counts["judge"] == cells * 2
    # the baseline weak model is shared by the two strong models; the other arms read one
    assert counts["train_weak"] == 5 * 3 and counts["train_weak_strong"] == cells * 8
    assert counts["zero_shot"] == cells and counts["train_ceiling"] == cells
    assert counts["train_student"] == cells * 9 * 3 and counts["train_self_distill"] == cells * 3
    assert "item_prefixes" not in counts  # generation.reuse_prefixes: false (GPU-scale prefixes)
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    for name, spec in {**paper["models"], **paper["datasets"]}.items():
        assert re.fullmatch(r"[0-9a-f]{40}", spec.get("revision", "")), f"{name} is not pinned"
    # every prep job says which commit of which hub dataset it loads
    preps = re.findall(r"^Job \d+: prep (\w+) seed \d from hub (\S+)@([0-9a-f]{40})$",
                       result.stdout, re.M)
    assert len(preps) == 15
    assert {(name, revision) for name, _, revision in preps} == {
        (name, spec["revision"]) for name, spec in paper["datasets"].items()}


# What each arm selection asks the strong model for: nothing it does not read is computed.
GENERATION_RULES = ("item_prefixes", "explain_shard", "explain", "zero_shot", "debate_round",
                    "debate")


@pytest.mark.parametrize("arms, generated", [
    (["baseline"], {}),
    (["baseline", "distill"], {"zero_shot": 1}),
    # the debate's opening, rebuttal and drift prompts share each item's prefix: one store
    (["baseline", "debate"], {"item_prefixes": 1, "debate_round": 2, "debate": 1}),
    (["baseline", "explain"], {"explain_shard": 1, "explain": 1}),
])
def test_only_the_signals_an_arm_reads_are_computed(tmp_path, arms, generated):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["align"] = {"arms": arms, "controls": []}
    result = run_snakemake("-n", "--forceall", *study(tmp_path, config))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert {rule: counts[rule] for rule in GENERATION_RULES if rule in counts} == generated
    # the debate plot exists only with debates
    assert ("results/plots/debate_rounds.png" in result.stdout) == ("debate" in generated)
    assert counts["train_student"] == 2 * len(arms) + BASELINE_CELL_JOBS["train_student"]


def test_paper_config_without_generation_arms_runs_no_debate(tmp_path):
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    config["align"] = {"arms": ["baseline", "distill"]}
    config["debate"]["judge"] = {"enabled": False}
    result = run_snakemake("-n", *study(tmp_path, config))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = job_counts(result.stdout)
    cells = 5 * 3 * 2
    assert "debate_round" not in counts and "explain_shard" not in counts
    assert counts["zero_shot"] == cells and counts["train_student"] == cells * 2 * 3


# The default study has two datasets (its W2S and EDA cells): two prep and train_weak jobs a seed.
@pytest.mark.parametrize("override, rule, count", [
    ("seeds=[0,1]", "prep", 4),
    ("debate={'n_rounds': 3, 'judge': {'enabled': true}}", "debate_round", 3),
    ("train={'weak': {'layer': 3}}", "train_weak", 2),
    ("debate={'n_samples': 4}", "debate_round", 2),
])
def test_config_overrides_on_the_command_line(override, rule, count):
    """`--config` the Snakemake way: values inside a list or mapping arrive as strings and are
    read as YAML before validation."""
    result = run_snakemake("-n", "--forceall", "--config", override)
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_counts(result.stdout)[rule] == count


def test_a_wrong_type_on_the_command_line_is_one_line_naming_the_key():
    result = run_snakemake("-n", "--config", "seeds=[zero]")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = [line.strip() for line in output.splitlines() if "config key" in line]
    assert lines == ["config key 'seeds.0': 'zero' is not of type 'integer'"], output[-2000:]
