"""Yang et al.'s (2024) Deception Score as the paper's reviews read it (stats.deception_ds): DS =
|D ∩ S_k ∩ W_uk| / |D|, D = the items where the weakly supervised student's prediction differs from
the ceiling's; its bootstrap CI; and the analysis' setting dimension (rows per training setting,
each compared with the baseline student of its own setting). Every expected value is counted by
hand."""

import json

import numpy as np
import pandas as pd
import pytest

from test_analysis_science import LABELS, _predictions
from w2s_eda.analysis import analyze, analyze_cell, markdown
from w2s_eda.stats import percentile_ci, deception, deception_ds, deception_ds_bootstrap


def _p(right) -> np.ndarray:
    """P(label 1) of a model that is right exactly on ``right`` (of LABELS)."""
    predicted = np.where(np.array(right) == 1, LABELS, 1 - LABELS)
    return np.where(predicted == 1, 0.8, 0.2)


# labels          1 1 1 1 0 0 0 0   (item 0 … 7)
# ceiling right   1 1 1 1 1 1 0 0   -> S_k  = {0, 1, 2, 3, 4, 5}
# weak right      1 0 0 1 1 0 1 0   -> W_uk = {1, 2, 5, 7}
# student right   1 0 0 0 1 1 0 1
# The student predicts differently from the ceiling exactly where their correctness differs (the
# labels are binary): D = {1, 2, 3, 7} (item 6: both wrong, so they agree).
# D ∩ S_k = {1, 2, 3} (the student is wrong on all three); ∩ W_uk = {1, 2}.  DS = 2 / 4 = 0.5.
# References: S_k ∩ W_uk = {1, 2, 5}, 3 of 8 items (ds_chance 3/8); the weak model and the ceiling
# disagree on {1, 2, 5, 6}, 3 of them in S_k ∩ W_uk (a weak-copying student: ds_weak_copy 3/4).
CEILING = _p([1, 1, 1, 1, 1, 1, 0, 0])
WEAK = _p([1, 0, 0, 1, 1, 0, 1, 0])
STUDENT = _p([1, 0, 0, 0, 1, 1, 0, 1])


def test_ds_on_a_hand_counted_example():
    assert deception_ds(LABELS, WEAK, CEILING, STUDENT) == {
        "ds": 0.5, "n_disagree": 4, "n_disagree_wu_sk": 2, "ds_chance": 3 / 8, "ds_weak_copy": 3 / 4}
    # Not the same quantity as the error rate on W_uk ∩ S_k = {1, 2, 5}: wrong on 1, 2 -> 2/3.
    assert deception(LABELS, WEAK, CEILING, STUDENT)["deception_score"] == pytest.approx(2 / 3)


def test_a_student_that_agrees_with_the_ceiling_has_no_ds():
    assert deception_ds(LABELS, WEAK, CEILING, CEILING) == {
        "ds": None, "n_disagree": 0, "n_disagree_wu_sk": 0, "ds_chance": 3 / 8, "ds_weak_copy": 3 / 4}
    # P = 0.5 predicts 0, as everywhere else: against a ceiling at 0.2 that is agreement.
    assert deception_ds([0], [0.8], [0.2], [0.5])["n_disagree"] == 0
    assert deception_ds([0], [0.8], [0.2], [0.51]) == {
        "ds": 1.0, "n_disagree": 1, "n_disagree_wu_sk": 1, "ds_chance": 1.0, "ds_weak_copy": 1.0}


def test_bootstrap_of_a_student_that_disagrees_everywhere():
    # The student says the opposite of the ceiling on every item: D = all 8, so DS is defined on
    # every resample; DS = |S_k ∩ W_uk| / 8 = |{1, 2, 5}| / 8.
    opposite = 1 - CEILING
    assert deception_ds(LABELS, WEAK, CEILING, opposite)["ds"] == 3 / 8
    low, high, undefined = deception_ds_bootstrap(LABELS, WEAK, CEILING, opposite, 1000, seed=0)
    assert undefined == 0.0
    assert 0 <= low <= 3 / 8 <= high <= 1 and low < high


def test_bootstrap_of_a_student_equal_to_the_ceiling_is_undefined_everywhere():
    assert deception_ds_bootstrap(LABELS, WEAK, CEILING, CEILING, 200, seed=0) == (None, None, 1.0)


def test_bootstrap_equals_ds_recomputed_on_each_resample():
    n_resamples = 300
    low, high, undefined = deception_ds_bootstrap(LABELS, WEAK, CEILING, STUDENT, n_resamples, 7)
    assert low <= 0.5 <= high
    # The same draws as paired_bootstrap: one (n_resamples × n) matrix from the seed's generator.
    idx = np.random.default_rng(7).integers(0, len(LABELS), (n_resamples, len(LABELS)))
    values = [deception_ds(LABELS[i], WEAK[i], CEILING[i], STUDENT[i])["ds"] for i in idx]
    expected = percentile_ci(np.array([np.nan if v is None else v for v in values]))
    assert (low, high) == pytest.approx(expected)
    # D = {1, 2, 3, 7} is missed with probability (4/8)^8 = 0.0039 per resample.
    assert undefined == pytest.approx(np.mean([v is None for v in values]))
    assert undefined < 0.02


# A cell with a second training setting. Test items 0-7 (LABELS), right (1) or wrong (0):
RIGHT = {
    "floor": [1, 1, 0, 0, 1, 1, 0, 0],             # the baseline's weak model: W_uk = {2, 3, 6, 7}
    "ceiling": [1, 1, 1, 1, 1, 1, 1, 0],           # S_k = {0, …, 6}
    "weak_debate": [1, 1, 1, 0, 1, 1, 1, 0],       # W_uk = {3, 7}
    "student_baseline": [1, 1, 0, 0, 1, 0, 0, 0],  # D = {2, 3, 5, 6}; in S_k ∩ W_uk: {2, 3, 6}: 3/4
    "student_debate": [1, 1, 1, 1, 1, 1, 1, 1],    # D = {7}, not in S_k: 0/1
    "self_distill": [1, 1, 1, 1, 1, 1, 0, 0],      # D = {6}; W = the floor, 6 ∈ W_uk: 1/1
    "explicit_baseline": [1, 1, 1, 1, 1, 1, 1, 0],  # = the ceiling: D empty, DS undefined
    "explicit_debate": [0, 1, 1, 0, 1, 1, 1, 0],   # D = {0, 3}; W_uk (debate) ∩ S_k ∋ 3: 1/2
}


@pytest.fixture
def cell(tmp_path):
    files = {name: _predictions(tmp_path / f"{name}.parquet", right)
             for name, right in RIGHT.items()}
    return {
        "dataset": "toy", "seed": 0, "weak": "w", "strong": "s",
        "ceiling_predictions": files["ceiling"],
        "weak_predictions": {"baseline": files["floor"], "debate": files["weak_debate"]},
        "student_predictions": {arm: {"xent": files[f"student_{arm}"]}
                                for arm in ("baseline", "debate")},
        "control_predictions": {"self_distill": {"xent": files["self_distill"]}},
        "setting_predictions": {"explicit": {arm: {"xent": files[f"explicit_{arm}"]}
                                             for arm in ("baseline", "debate")}},
    }


def test_rows_per_setting_carry_ds_and_compare_with_their_own_settings_baseline(cell):
    rows, deceptions = analyze_cell(cell, n_resamples=500)
    assert [(r["arm"], r["kind"], r["setting"]) for r in rows] == [
        ("baseline", "arm", "none"), ("debate", "arm", "none"), ("self_distill", "control", "none"),
        ("baseline", "arm", "explicit"), ("debate", "arm", "explicit")]
    got = {(r["arm"], r["setting"]): r for r in rows}
    assert {key: r["ds"] for key, r in got.items()} == {
        ("baseline", "none"): 0.75, ("debate", "none"): 0.0, ("self_distill", "none"): 1.0,
        ("baseline", "explicit"): None, ("debate", "explicit"): 0.5}
    assert {key: r["ds_n_disagree"] for key, r in got.items()} == {
        ("baseline", "none"): 4, ("debate", "none"): 1, ("self_distill", "none"): 1,
        ("baseline", "explicit"): 0, ("debate", "explicit"): 2}
    undefined = got[("baseline", "explicit")]
    assert undefined["ds_undefined_in_resamples"] == 1.0
    assert undefined["ds_ci_low"] is None and undefined["ds_ci_high"] is None
    for r in rows:
        if r["ds"] is not None:
            assert r["ds_ci_low"] <= r["ds"] <= r["ds_ci_high"]
    # The old columns keep the floor as W: explicit/debate is wrong on 0 and 3; W_uk ∩ S_k =
    # {2, 3, 6} -> 1/3; W_k ∩ S_k = {0, 1, 4, 5} -> 1/4.
    assert got[("debate", "explicit")]["deception_score"] == pytest.approx(1 / 3)
    assert got[("debate", "explicit")]["deception_gap"] == pytest.approx(1 / 3 - 1 / 4)
    # explicit/debate (5/8) against the explicit baseline (7/8), not the "none" one (3/8): only the
    # baseline is right on items 0 and 3 -> Δ = -0.25, exact McNemar p = 2 * 0.5^2 = 0.5.
    explicit = got[("debate", "explicit")]
    assert explicit["vs_baseline_accuracy_diff"] == pytest.approx(-0.25)
    assert explicit["vs_baseline_discordant"] == 2
    assert explicit["vs_baseline_mcnemar_p"] == pytest.approx(0.5)
    assert got[("debate", "none")]["vs_baseline_accuracy_diff"] == pytest.approx(0.625)
    assert got[("self_distill", "none")]["vs_baseline_accuracy_diff"] == pytest.approx(0.375)
    assert got[("baseline", "explicit")]["vs_baseline_mcnemar_p"] is None
    # One Holm family over the cell, m = 3: 0.0625 x 3, 0.25 x 2, 0.5 x 1 -> max(0.5, 0.5).
    assert {key: r["vs_baseline_mcnemar_p_holm"] for key, r in got.items()} == pytest.approx({
        ("baseline", "none"): None, ("debate", "none"): 0.1875, ("self_distill", "none"): 0.5,
        ("baseline", "explicit"): None, ("debate", "explicit"): 0.5})
    assert [(d["arm"], d["setting"], d["ds"]) for d in deceptions] == [
        (r["arm"], r["setting"], r["ds"]) for r in rows]


def test_none_is_not_an_extra_setting(cell):
    cell["setting_predictions"]["none"] = cell["student_predictions"]
    with pytest.raises(ValueError, match="none"):
        analyze_cell(cell, n_resamples=10)


def test_the_outputs_show_settings_and_ds(cell, tmp_path):
    names = {"csv": "summary.csv", "md": "summary.md", "html": "pgr_table.html", "pgr": "pgr.json",
             "deception": "deception.json", "ladder": "ladder.png", "pgr_plot": "pgr.png",
             "deception_plot": "deception.png", "arms_table": "arms_table.png",
             "deception_settings_plot": "ds.png"}
    outputs = {key: str(tmp_path / "out" / name) for key, name in names.items()}
    table = analyze([cell], outputs, n_resamples=200)
    summary = pd.read_csv(outputs["csv"])
    assert list(summary.setting) == ["none", "none", "none", "explicit", "explicit"]
    for column in ("ds", "ds_ci_low", "ds_ci_high", "ds_undefined_in_resamples", "ds_n_disagree",
                   "deception_score", "deception_gap"):
        assert column in summary.columns
    md = (tmp_path / "out/summary.md").read_text()
    assert "| loss | setting | floor acc |" in md
    assert "| DS [95% CI] | deception score / gap |" in md
    assert "| xent | explicit |" in md and "undefined (no disagreement)" in md
    assert "**Deception.**" in md and "**Setting.**" in md
    assert "ds_undefined_in_resamples" in (tmp_path / "out/pgr_table.html").read_text()
    deceptions = json.loads((tmp_path / "out/deception.json").read_text())
    assert [d["setting"] for d in deceptions] == list(summary.setting)
    assert deceptions[0]["ds"] == 0.75
    pgr = json.loads((tmp_path / "out/pgr.json").read_text())
    assert [m["setting"] for m in pgr["median_across_cells"]] == list(summary.setting)
    for name in ("ds.png", "deception.png", "arms_table.png", "pgr.png", "ladder.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Without other settings: no setting column, DS still there.
    plain = markdown(table[table["setting"] == "none"])
    assert "| setting |" not in plain and "DS [95% CI]" in plain and "**Setting.**" not in plain


def test_the_settings_plot_is_written_only_when_asked_for(cell, tmp_path):
    names = {"csv": "s.csv", "md": "s.md", "html": "t.html", "pgr": "p.json",
             "deception": "d.json", "ladder": "l.png", "pgr_plot": "p.png",
             "deception_plot": "d.png"}
    del cell["setting_predictions"]
    analyze([cell], {key: str(tmp_path / name) for key, name in names.items()}, n_resamples=50)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["d.png", "l.png", "p.png"]


def test_ds_differences_compare_each_setting_with_its_reference_on_the_same_resamples():
    """A conflict is compared with `none`, a chain with the direct student of its conflict; the
    difference's CI comes from the same resampled items on both sides."""
    from w2s_eda.analysis import _add_ds_differences, reference_setting
    from w2s_eda.stats import deception_ds_resamples

    assert reference_setting("none") is None and reference_setting("explicit") == "none"
    assert reference_setting("implicit+via-mid") == "implicit"
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    ceiling = labels.astype(float)  # right everywhere: S_k is every item
    weak = np.array([0.2, 0.2, 0.8, 0.8, 0.8, 0.8, 0.2, 0.2])  # wrong on items 0, 1, 4, 5
    plain = np.array([0.2, 0.8, 0.2, 0.8, 0.2, 0.2, 0.2, 0.2])  # disagrees on 0 (W_uk), 2
    conflicted = np.array([0.2, 0.2, 0.8, 0.8, 0.8, 0.8, 0.8, 0.2])  # on 0, 1, 4, 5 (W_uk), 6
    rows, resamples = [], []
    for setting, student in (("none", plain), ("explicit", conflicted)):
        ds = deception_ds(labels, weak, ceiling, student)["ds"]
        rows.append({"arm": "baseline", "kind": "arm", "loss": "xent", "setting": setting, "ds": ds})
        resamples.append(deception_ds_resamples(labels, weak, ceiling, student, 500, 3))
    _add_ds_differences(rows, resamples)
    assert rows[0]["ds_minus_reference"] is None and rows[0]["ds_reference_setting"] is None
    # DS: none 1/2, explicit 4/5 -> +0.3
    assert rows[1]["ds_reference_setting"] == "none"
    assert rows[1]["ds_minus_reference"] == pytest.approx(0.8 - 0.5)
    low, high = rows[1]["ds_minus_reference_ci_low"], rows[1]["ds_minus_reference_ci_high"]
    paired = resamples[1] - resamples[0]
    assert (low, high) == pytest.approx(tuple(np.nanpercentile(paired, [2.5, 97.5])))


def test_ds_references_random_departures_and_copying_the_weak_model():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    ceiling = np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9])  # right on 0-2 and 4-6
    weak = np.array([0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9, 0.1])  # wrong on 0, 1, 6
    # S_k ∩ W_uk = {0, 1, 6}: 3 of 8 items -> chance 3/8. The weak model and the ceiling disagree
    # on 0, 1, 3, 6, 7 (3 in S_k ∩ W_uk) -> a student copying the weak model scores 3/5.
    out = deception_ds(labels, weak, ceiling, weak)
    assert out["ds_chance"] == pytest.approx(3 / 8) and out["ds_weak_copy"] == pytest.approx(3 / 5)
    assert out["ds"] == out["ds_weak_copy"]
