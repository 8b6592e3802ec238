"""The analysis of arms against the baseline, on a synthetic cell of 8 test items written as parquet
files: PGR against the arm's own weak model, Holm-corrected McNemar p, the MDE, the self_distill
control, the strong zero-shot and judge reference points, summary.md and the arms table figure.
No models: every expected value below is computed by hand."""

import json

import numpy as np
import pandas as pd
import pytest

from w2s_eda.analysis import analyze, analyze_cell, markdown
from w2s_eda.arms import describe_arm
from w2s_eda.errors import DatasetError

IDS = [f"item{i}" for i in range(8)]
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])
# Which test items each model gets right (1) or wrong (0).
RIGHT = {
    "floor": [1, 1, 0, 0, 1, 1, 0, 0],             # 4/8 = 0.5, the baseline arm's weak model
    "ceiling": [1, 1, 1, 1, 1, 1, 1, 0],           # 7/8 = 0.875
    "weak_debate": [1, 1, 1, 0, 1, 1, 1, 0],       # 6/8 = 0.75
    "weak_ensemble": [1, 1, 1, 1, 1, 1, 1, 0],     # 7/8 = the ceiling: PGR vs own weak undefined
    "student_baseline": [1, 1, 0, 0, 1, 0, 0, 0],  # 3/8 = 0.375
    "student_debate": [1, 1, 1, 1, 1, 1, 1, 1],    # 8/8
    "student_ensemble": [1, 1, 1, 0, 0, 0, 0, 0],  # 3/8
    "self_distill": [1, 1, 1, 1, 1, 1, 0, 0],      # 6/8 = 0.75
}
ARMS = {
    "baseline": {"context": [], "targets": "gold"},
    "debate": {"context": ["debate"], "targets": "gold"},
    "ensemble": {"context": ["debate"], "targets": "gold",
                 "ensemble": {"members": 4, "vary": "transcript"}},
}
Z = 1.959964 + 0.841621  # z_0.975 + z_0.8


def _predictions(path, right) -> str:
    """A predictions file (id, label, p_label1) whose model is right exactly on ``right``."""
    predicted = np.where(np.array(right) == 1, LABELS, 1 - LABELS)
    pd.DataFrame({"id": IDS, "label": LABELS, "p_label1": np.where(predicted == 1, 0.8, 0.2)}
                 ).to_parquet(path)
    return str(path)


def _signal(path, p_by_sample: list[list[float]], **extra) -> str:
    """A strong-signal file (id, split, sample, p_label1, no label): the test items in reverse
    order, one row per sample, plus train rows of other items that must be ignored."""
    rows = [{"id": IDS[i], "split": "test", "sample": s, "p_label1": p, **extra}
            for s, ps in enumerate(p_by_sample) for i, p in reversed(list(enumerate(ps)))]
    rows += [{"id": f"train{i}", "split": "w2s_train", "sample": 0, "p_label1": 0.5, **extra}
             for i in range(3)]
    pd.DataFrame(rows).to_parquet(path)
    return str(path)


# Strong zero-shot: right on items 0-4 and 7 (0.75); positives beat negatives in 15 of 16 pairs
# (0.6 loses to 0.65), so AUROC = 15/16.
ZERO_SHOT = [[0.9, 0.8, 0.7, 0.6, 0.4, 0.55, 0.65, 0.3]]
# Judge on debates, two sampled debates per item: averaged, wrong only on item 3 (7/8); sample 0
# alone would also be wrong on item 4 (0.6).
JUDGE_DEBATES = [[0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.3, 0.2],
                 [0.3, 0.8, 0.7, 0.2, 0.2, 0.1, 0.3, 0.4]]
JUDGE_CONSULTANCY = [[0.8] * 8]  # always says 1: 4/8


@pytest.fixture
def cell(tmp_path):
    files = {name: _predictions(tmp_path / f"{name}.parquet", right) for name, right in RIGHT.items()}
    return {
        "dataset": "toy", "seed": 0, "weak": "w", "strong": "s",
        "ceiling_predictions": files["ceiling"],
        "weak_predictions": {"baseline": files["floor"], "debate": files["weak_debate"],
                             "ensemble": files["weak_ensemble"]},
        "student_predictions": {arm: {"xent": files[f"student_{arm}"]}
                                for arm in ("baseline", "debate", "ensemble")},
        "control_predictions": {"self_distill": {"xent": files["self_distill"]}},
        "zero_shot": _signal(tmp_path / "zero_shot.parquet", ZERO_SHOT, prompt="p"),
        "judge": {
            "debates": _signal(tmp_path / "judge_debates.parquet", JUDGE_DEBATES, verdict="yes"),
            "consultancy": _signal(tmp_path / "judge_consultancy.parquet", JUDGE_CONSULTANCY,
                                   verdict="yes"),
        },
        "arms": ARMS,
    }


def _rows(cell) -> dict[str, dict]:
    rows, _ = analyze_cell(cell, n_resamples=1000)
    return {row["arm"]: row for row in rows}


def test_arms_and_the_control_get_pgr_against_the_floor_and_their_own_weak_model(cell):
    rows = _rows(cell)
    assert list(rows) == ["baseline", "debate", "ensemble", "self_distill"]
    assert [r["kind"] for r in rows.values()] == ["arm", "arm", "arm", "control"]
    # Floor 0.5, ceiling 0.875: a gap of 0.375.
    assert rows["baseline"]["pgr_accuracy"] == pytest.approx((0.375 - 0.5) / 0.375)  # -1/3
    assert rows["debate"]["pgr_accuracy"] == pytest.approx(0.5 / 0.375)  # 4/3
    assert rows["self_distill"]["pgr_accuracy"] == pytest.approx(0.25 / 0.375)  # 2/3
    # Against its own weak model (0.75): (1 - 0.75) / (0.875 - 0.75) = 2.
    assert rows["debate"]["weak_arm_accuracy"] == 0.75
    assert rows["debate"]["pgr_vs_own_weak_accuracy"] == pytest.approx(2.0)
    low, high = rows["debate"]["pgr_vs_own_weak_accuracy_ci_low"], rows["debate"]["pgr_vs_own_weak_accuracy_ci_high"]
    assert low <= high
    # The baseline's own weak model is the floor: the two PGRs agree.
    assert rows["baseline"]["pgr_vs_own_weak_accuracy"] == pytest.approx(rows["baseline"]["pgr_accuracy"])
    # The ensemble's weak model is right exactly where the ceiling is: undefined, on every resample.
    assert rows["ensemble"]["pgr_vs_own_weak_accuracy"] is None
    assert rows["ensemble"]["pgr_vs_own_weak_accuracy_undefined_in_resamples"] == 1.0
    assert rows["ensemble"]["pgr_accuracy"] == pytest.approx(-1 / 3)
    # The control has no weak model.
    control = rows["self_distill"]
    assert control["weak_arm_accuracy"] is None and control["pgr_vs_own_weak_accuracy"] is None


def test_the_undefined_share_of_pgr_resamples_is_reported(cell):
    rows = _rows(cell)
    shares = {r["pgr_accuracy_undefined_in_resamples"] for r in rows.values()}
    # It depends on floor and ceiling only, and every row uses the same resamples.
    assert len(shares) == 1
    # The ceiling beats the floor unless none of items 2, 3, 6 is drawn: (5/8)^8 = 0.023.
    assert 0 < shares.pop() < 0.06


def test_mcnemar_p_is_holm_corrected_over_the_cell_and_comes_with_its_mde(cell):
    rows = _rows(cell)
    assert rows["baseline"]["vs_baseline_mcnemar_p"] is None
    assert rows["baseline"]["vs_baseline_mcnemar_p_holm"] is None
    # Discordant items against the baseline student (only the row's student right / only baseline):
    # debate 5 / 0 -> p = 2 * 0.5^5 = 0.0625; self_distill 3 / 0 -> p = 0.25; ensemble 1 / 1 -> 1.
    raw = {arm: rows[arm]["vs_baseline_mcnemar_p"] for arm in ("debate", "self_distill", "ensemble")}
    assert raw == pytest.approx({"debate": 0.0625, "self_distill": 0.25, "ensemble": 1.0})
    # Holm, m = 3: 0.0625 x 3 = 0.1875; 0.25 x 2 = 0.5; 1.0 x 1 = 1.0 (monotone already).
    holm = {arm: rows[arm]["vs_baseline_mcnemar_p_holm"] for arm in raw}
    assert holm == pytest.approx({"debate": 0.1875, "self_distill": 0.5, "ensemble": 1.0})
    assert all(holm[arm] >= raw[arm] for arm in raw)
    by_raw = sorted(raw, key=raw.get)
    assert [holm[arm] for arm in by_raw] == sorted(holm[arm] for arm in by_raw)
    # MDE = (z_0.975 + z_0.8) * sqrt(d / n), d = discordant / n, n = 8.
    assert rows["debate"]["vs_baseline_discordant"] == 5
    assert rows["debate"]["vs_baseline_mde"] == pytest.approx(Z * np.sqrt(5 / 64), abs=1e-5)
    assert rows["self_distill"]["vs_baseline_mde"] == pytest.approx(Z * np.sqrt(3 / 64), abs=1e-5)
    assert rows["ensemble"]["vs_baseline_mde"] == pytest.approx(Z * np.sqrt(2 / 64), abs=1e-5)
    assert rows["debate"]["vs_baseline_accuracy_diff"] == pytest.approx(1 - 0.375)


def test_every_student_row_carries_its_gain_over_the_floor(cell):
    rows = _rows(cell)
    for row in rows.values():
        assert row["w2s_minus_floor"] == pytest.approx(row["w2s_accuracy"] - row["floor_accuracy"])
        low, high = row["w2s_minus_floor_ci_low"], row["w2s_minus_floor_ci_high"]
        assert low <= row["w2s_minus_floor"] <= high
    # Floor 0.5: debate 1.0, baseline 0.375, self_distill 0.75.
    assert rows["debate"]["w2s_minus_floor"] == pytest.approx(0.5)
    assert rows["baseline"]["w2s_minus_floor"] == pytest.approx(-0.125)
    assert rows["self_distill"]["w2s_minus_floor"] == pytest.approx(0.25)
    # McNemar against the floor: debate right alone on items 2, 3, 6, 7, the floor never ->
    # 2 * 0.5^4; the baseline student 0 / 1 (item 5) -> 1.
    assert rows["debate"]["w2s_minus_floor_p"] == pytest.approx(0.125)
    assert rows["baseline"]["w2s_minus_floor_p"] == pytest.approx(1.0)


def test_summary_md_opens_with_the_baseline_students_gain_over_the_floor(cell, tmp_path):
    outputs = {name: str(tmp_path / file) for name, file in (
        ("csv", "s.csv"), ("md", "s.md"), ("html", "t.html"), ("pgr", "p.json"),
        ("deception", "d.json"), ("ladder", "l.png"), ("pgr_plot", "p.png"),
        ("deception_plot", "d.png"), ("arms_table", "a.png"))}
    analyze([cell], outputs, n_resamples=200)
    md = (tmp_path / "s.md").read_text()
    assert md.startswith("## Weak-to-strong generalisation (baseline arm)\n")
    head = md.split("## Every student", 1)[0]
    # only the baseline students, with their gain in points: floor 0.5, baseline 0.375
    rows = [line for line in head.splitlines() if line.startswith("| toy |")]
    assert len(rows) == 1 and "| baseline |" not in rows[0]
    assert "-12.5 [" in rows[0] and "| 1.000 |" in rows[0]


def test_floor_and_ceiling_error_agreement_is_on_every_row(cell):
    # Floor wrong on items 2, 3, 6, 7, the ceiling on 7: overlap 1/4. Same correctness on 0, 1,
    # 4, 5, 7: c_obs = 5/8; accuracies 0.5 and 0.875: c_exp = 0.5; kappa = 0.125 / 0.5 = 0.25.
    # CAPA: the same prediction on 5 items (0.8² + 0.2² = 0.68), a different one on 3 (0.32):
    # c_obs = 4.36 / 8 = 0.545; mean P(correct) 0.5 and 5.8 / 8 = 0.725: c_exp = 0.5; 0.09.
    for row in _rows(cell).values():
        assert row["error_overlap"] == pytest.approx(0.25)
        assert row["error_agreement_kappa"] == pytest.approx(0.25)
        assert row["capa"] == pytest.approx(0.09)


def _train_predictions(path, p_label1, target) -> str:
    """A student's w2s_train predictions (id, p_label1, target: the soft label it learned)."""
    pd.DataFrame({"id": [f"train{i}" for i in range(len(target))], "p_label1": p_label1,
                  "target": target}).to_parquet(path)
    return str(path)


def test_misfit_is_read_from_the_students_train_predictions(cell, tmp_path):
    # See test_stats.test_misfit_by_hand: 0.0375 and 1/4.
    cell["student_train_predictions"] = {"debate": {"xent": _train_predictions(
        tmp_path / "debate_train.parquet", [0.9, 0.4, 0.7, 0.2], [0.6, 0.6, 0.8, 0.1])}}
    cell["control_train_predictions"] = {"self_distill": {"xent": _train_predictions(
        tmp_path / "self_distill_train.parquet", [0.2, 0.8], [0.2, 0.8])}}
    rows = _rows(cell)
    debate = rows["debate"]
    assert (debate["misfit"], debate["misfit_hard"]) == (pytest.approx(0.0375), 0.25)
    assert rows["debate"]["misfit_n"] == 4
    assert (rows["self_distill"]["misfit"], rows["self_distill"]["misfit_hard"]) == (0.0, 0.0)
    # A student without w2s_train predictions has no misfit.
    assert rows["baseline"]["misfit"] is None and rows["baseline"]["misfit_hard"] is None
    cell["student_train_predictions"]["debate"]["xent"] = _train_predictions(
        tmp_path / "gap.parquet", [0.9, 0.4], [0.6, None])
    with pytest.raises(DatasetError, match="gap.parquet"):
        analyze_cell(cell, n_resamples=10)


def test_strong_zero_shot_and_judge_accuracy_are_on_every_row(cell):
    for row in _rows(cell).values():
        assert row["strong_zero_shot_accuracy"] == 0.75
        assert row["strong_zero_shot_auroc"] == pytest.approx(15 / 16)
        assert row["judge_accuracy_debates"] == 0.875  # the mean over sampled debates
        assert row["judge_accuracy_consultancy"] == 0.5


def test_a_signal_file_with_other_test_items_is_named_in_the_error(cell, tmp_path):
    cell["zero_shot"] = _signal(tmp_path / "short.parquet", [ZERO_SHOT[0][:7]])
    with pytest.raises(DatasetError, match="short.parquet"):
        analyze_cell(cell, n_resamples=10)


def test_a_cell_without_controls_or_signals_still_analyses(cell):
    for key in ("control_predictions", "zero_shot", "judge", "arms"):
        del cell[key]
    rows = _rows(cell)
    assert list(rows) == ["baseline", "debate", "ensemble"]
    assert not any(name.startswith(("strong_zero_shot", "judge_")) for name in rows["debate"])
    # Two comparisons now: 0.0625 x 2 = 0.125.
    assert rows["debate"]["vs_baseline_mcnemar_p_holm"] == pytest.approx(0.125)


def test_the_outputs_describe_each_arm_and_hold_the_arms_table_and_headline(cell, tmp_path):
    names = {"csv": "summary.csv", "md": "summary.md", "html": "pgr_table.html", "pgr": "pgr.json",
             "deception": "deception.json", "ladder": "ladder.png", "pgr_plot": "pgr.png",
             "deception_plot": "deception.png", "arms_table": "arms_table.png",
             "headline": "headline.png"}
    outputs = {key: str(tmp_path / "out" / name) for key, name in names.items()}
    analyze([cell], outputs, n_resamples=200)
    summary = pd.read_csv(outputs["csv"])
    assert list(zip(summary.arm, summary.kind)) == [
        ("baseline", "arm"), ("debate", "arm"), ("ensemble", "arm"), ("self_distill", "control")]
    for column in ("pgr_vs_own_weak_accuracy", "pgr_accuracy_undefined_in_resamples",
                   "vs_baseline_mcnemar_p_holm", "vs_baseline_mde", "strong_zero_shot_accuracy",
                   "judge_accuracy_debates", "w2s_minus_floor", "w2s_minus_floor_ci_low",
                   "w2s_minus_floor_ci_high", "w2s_minus_floor_p", "misfit", "misfit_hard",
                   "error_overlap", "error_agreement_kappa", "capa"):
        assert column in summary.columns
    md = (tmp_path / "out/summary.md").read_text()
    for arm, spec in ARMS.items():
        assert md.count(f"- **{arm}**:") == 1
        assert f"- **{arm}**: {describe_arm(arm, spec)}" in md
    assert md.count("- **self_distill** (control): the strong model trained on its own zero-shot") == 1
    assert "- **strong zero-shot**" in md and "- **judge**" in md
    assert "Holm" in md and "MDE" in md and "80 % power" in md
    assert "PGR undefined in resamples" in md
    pgr = json.loads((tmp_path / "out/pgr.json").read_text())
    assert pgr["rows"][1]["pgr_vs_own_weak_accuracy"] == pytest.approx(2.0)
    for plot in ("arms_table.png", "headline.png"):
        assert (tmp_path / "out" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_md_prints_the_study_notes_and_the_range_of_its_mdes(cell, tmp_path):
    outputs = {key: str(tmp_path / name) for key, name in (
        ("csv", "s.csv"), ("md", "s.md"), ("html", "t.html"), ("pgr", "p.json"),
        ("deception", "d.json"), ("ladder", "l.png"), ("pgr_plot", "p.png"),
        ("deception_plot", "d.png"), ("arms_table", "a.png"))}
    table = analyze([cell], outputs, n_resamples=200,
                    notes=["**Two cells.** Measured in bench/records/w2s_landscape/."])
    md = (tmp_path / "s.md").read_text()
    about = md.split("## This study\n\n", 1)[1].split("\n## ", 1)[0]
    assert about.startswith("**Two cells.** Measured in bench/records/w2s_landscape/.")
    mde = table["vs_baseline_mde"].dropna()
    assert (f"could detect accuracy differences of {100 * mde.min():.0f}–{100 * mde.max():.0f} "
            "points at 80 % power") in about
    # no notes and no comparison with a baseline student: no section at all
    assert "## This study" not in markdown(table.assign(vs_baseline_mde=np.nan))
