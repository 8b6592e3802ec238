"""Debate science end to end, read from the shared tiny study (conftest.tiny_study): sequential
debates among four debaters, two sampled debates per item, consultancy, the judge on every
transcript, Lang et al.'s debate and finetune ensembles, an arm learning the judge's verdict, and
the self-distillation and zero-shot controls in the analysis."""

import json

import pandas as pd
import pytest

from conftest import TINY_ARMS

pytestmark = pytest.mark.slow

CELL = "results/toy/seed0/smollm2-135m"


def _ok(tiny_study):
    folder, result, config = tiny_study
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / CELL, config


def test_sequential_debates_of_four_debaters_are_sampled_twice_per_item(tiny_study):
    cell, config = _ok(tiny_study)
    debates = pd.read_parquet(cell / "debates.parquet")
    assert len(debates) == 24
    assert debates.groupby("id")["sample"].apply(lambda s: sorted(s) == [0, 1]).all()
    assert set(debates.protocol) == {"sequential"}
    for turns in debates.turns:
        assert [(t["round"], t["debater"], t["side"]) for t in turns] == [
            (1, 0, 1), (1, 1, 0), (1, 2, 1), (1, 3, 0)]
    stats = json.loads((cell / "debate_stats.json").read_text())
    assert stats["n_samples"] == 2 and stats["sampled"] and stats["speakers"] == 4
    # the two samples of an item are two debates, not one debate twice
    assert stats["items_with_distinct_samples"] >= 0.75


def test_consultancy_argues_one_assigned_side_per_sample_and_both_over_the_two(tiny_study):
    cell, _ = _ok(tiny_study)
    consultancy = pd.read_parquet(cell / "consultancy.parquet")
    assert len(consultancy) == 24 and set(consultancy.protocol) == {"consultancy"}
    assert all(len(turns) == 1 for turns in consultancy.turns)
    sides = consultancy.assign(side=[turns[0]["side"] for turns in consultancy.turns])
    assert sides.groupby("id")["side"].apply(lambda s: sorted(s) == [0, 1]).all()
    assert consultancy.transcript.str.startswith("Consultant (argues").all()


def test_the_judge_reads_every_transcript_and_its_accuracy_is_in_the_summary(tiny_study):
    cell, _ = _ok(tiny_study)
    for kind in ("debates", "consultancy"):
        judge = pd.read_parquet(cell / f"judge/smollm2-135m/{kind}.parquet")
        transcripts = pd.read_parquet(cell / f"{kind}.parquet")
        assert judge[["id", "sample"]].equals(transcripts[["id", "sample"]])
        assert judge.p_label1.between(0, 1).all() and judge.verdict.str.contains(r"\(P\(").all()
    summary = pd.read_csv(cell.parents[2] / "summary.csv")
    assert summary.judge_accuracy_debates.between(0, 1).all()
    assert summary.judge_accuracy_consultancy.between(0, 1).all()


def test_ensemble_members_differ_and_the_debate_ensemble_reads_one_transcript_each(tiny_study):
    cell, _ = _ok(tiny_study)
    weak = cell / "weak/minilm-l6"
    debate_ensemble = json.loads((weak / "debate_ensemble/metrics.json").read_text())
    finetune_ensemble = json.loads((weak / "finetune_ensemble/metrics.json").read_text())
    assert [m["sample"] for m in debate_ensemble["members"]] == [0, 1]
    assert [m["sample"] for m in finetune_ensemble["members"]] == [0, 0]
    for metrics in (debate_ensemble, finetune_ensemble):
        assert metrics["ensemble"]["members"] == 2 and metrics["member_disagreement"] > 0
        assert len({m["seed"] for m in metrics["members"]}) == 2
    soft = pd.read_parquet(weak / "finetune_ensemble/soft_labels.parquet")
    assert (soft.p_member0 - soft.p_member1).abs().max() > 1e-3
    judged = json.loads((weak / "debate_judge/metrics.json").read_text())
    assert judged["targets"] == "judge"


def test_the_summary_has_the_controls_the_corrections_and_a_line_per_arm(tiny_study):
    cell, config = _ok(tiny_study)
    results = cell.parents[2]
    summary = pd.read_csv(results / "summary.csv")
    losses = config["train"]["strong"]["losses"]
    arms = summary[summary.kind == "arm"]
    assert sorted(set(arms.arm)) == sorted(TINY_ARMS) and len(arms) == len(TINY_ARMS) * len(losses)
    controls = summary[summary.kind == "control"]
    assert set(controls.arm) == {"self_distill"} and sorted(controls.loss) == sorted(losses)
    assert summary.strong_zero_shot_accuracy.between(0, 1).all()
    compared = summary[summary.arm != "baseline"]
    assert (compared.vs_baseline_mcnemar_p_holm >= compared.vs_baseline_mcnemar_p - 1e-12).all()
    assert compared.vs_baseline_mde.gt(0).all()
    assert summary.pgr_accuracy_undefined_in_resamples.between(0, 1).all()
    assert "pgr_vs_own_weak_accuracy" in summary.columns
    md = (results / "summary.md").read_text()
    for arm in TINY_ARMS:
        assert f"- **{arm}**:" in md
    assert "Holm" in md and "80 %" in md
    assert (results / "plots/arms_table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
