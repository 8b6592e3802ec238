"""Analysis: PGR, paired bootstrap, McNemar, deception regions, across-seed summaries."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from w2s_eda.stats import (
    UNDEFINED,
    Predictions,
    across_seeds,
    accuracy_rows,
    auroc_rows,
    capa,
    deception,
    error_agreement,
    holm,
    mcnemar,
    mde_paired,
    misfit,
    paired_bootstrap,
    pgr,
)

# Ten test items. Floor right on 6, ceiling right on 9, student right on 8 (hand-checked below).
Y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
FLOOR = np.array([.9, .8, .7, .2, .3, .1, .2, .6, .7, .4])     # right: items 0,1,2,5,6,9 -> 0.6
CEILING = np.array([.9, .9, .8, .7, .6, .1, .2, .3, .4, .6])   # right: all but item 9 -> 0.9
STUDENT = np.array([.8, .2, .9, .8, .7, .3, .1, .2, .6, .6])   # wrong: items 1, 8, 9 -> 0.7


def test_pgr_on_a_hand_computed_example():
    assert pgr(0.7, 0.6, 0.9)[0] == pytest.approx(1 / 3)
    assert pgr(0.5, 0.6, 0.9)[0] == pytest.approx(-1 / 3)
    assert pgr(0.95, 0.6, 0.9)[0] == pytest.approx(7 / 6)


@pytest.mark.parametrize("ceiling", [0.6, 0.55])
def test_pgr_is_undefined_when_the_ceiling_does_not_beat_the_floor(ceiling):
    assert pgr(0.7, 0.6, ceiling) == (None, UNDEFINED)


def test_vectorised_metrics_equal_scikit_learn_row_by_row():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (50, 30))
    scores = np.round(rng.random((50, 30)), 1)  # rounded: many ties
    expected = [roc_auc_score(y, p) for y, p in zip(labels, scores)]
    assert np.allclose(auroc_rows(labels, scores), expected)
    assert np.allclose(accuracy_rows(labels, scores), ((scores > 0.5) == labels).mean(axis=1))
    assert np.isnan(auroc_rows(np.ones((1, 5), int), np.random.random((1, 5))))[0]


def test_paired_bootstrap_resamples_every_model_together_and_is_seeded():
    preds = Predictions(Y, FLOOR, CEILING)
    a = paired_bootstrap(preds, STUDENT, n_resamples=2000, seed=7)
    b = paired_bootstrap(preds, STUDENT, n_resamples=2000, seed=7)
    assert a == b and a["n_resamples"] == 2000
    low, high = a["w2s_accuracy"]
    assert low < 0.7 < high and 0 <= low and high <= 1
    low, high = a["pgr_accuracy"]
    assert low < 1 / 3 < high
    # A student identical to the ceiling has PGR exactly 1 on every resample where it is defined:
    # the resampling is paired.
    same = paired_bootstrap(preds, CEILING, n_resamples=500, seed=1)
    assert same["pgr_accuracy"] == (1.0, 1.0)
    # With a floor equal to the ceiling PGR is undefined on every resample.
    flat = paired_bootstrap(Predictions(Y, CEILING, CEILING), STUDENT, n_resamples=200, seed=1)
    assert flat["pgr_accuracy"] == (None, None) and flat["pgr_accuracy_undefined_fraction"] == 1.0


def test_paired_bootstrap_takes_pgr_against_the_arms_own_weak_model_on_the_same_resamples():
    preds = Predictions(Y, FLOOR, CEILING)
    plain = paired_bootstrap(preds, STUDENT, n_resamples=500, seed=3)
    own = paired_bootstrap(preds, STUDENT, n_resamples=500, seed=3, own_weak=FLOOR)
    # With the floor as its own weak model, PGR vs own weak is PGR, resample by resample.
    assert own["pgr_vs_own_weak_accuracy"] == own["pgr_accuracy"] == plain["pgr_accuracy"]
    assert (own["pgr_vs_own_weak_accuracy_undefined_fraction"]
            == own["pgr_accuracy_undefined_fraction"])
    # A weak model as good as the ceiling leaves no gap: undefined on every resample.
    flat = paired_bootstrap(preds, STUDENT, n_resamples=200, seed=3, own_weak=CEILING)
    assert flat["pgr_vs_own_weak_accuracy"] == (None, None)
    assert flat["pgr_vs_own_weak_accuracy_undefined_fraction"] == 1.0
    assert "pgr_vs_own_weak_accuracy" not in plain


def test_w2s_minus_floor_is_resampled_with_the_pgr():
    preds = Predictions(Y, FLOOR, CEILING)
    out = paired_bootstrap(preds, STUDENT, n_resamples=2000, seed=7)
    low, high = out["w2s_minus_floor_accuracy"]
    assert low < 0.7 - 0.6 < high
    # Paired: a student equal to the floor differs from it by exactly 0 on every resample.
    same = paired_bootstrap(preds, FLOOR, n_resamples=200, seed=7)
    assert same["w2s_minus_floor_accuracy"] == (0, 0)


def test_misfit_by_hand():
    # Differences 0.3, -0.2, -0.1, 0.1: squares 0.09 + 0.04 + 0.01 + 0.01 = 0.15, / 4 = 0.0375.
    # Hard predictions 1,0,1,0 against 1,1,1,0: they differ on item 1 only, 1/4.
    out = misfit(np.array([0.9, 0.4, 0.7, 0.2]), np.array([0.6, 0.6, 0.8, 0.1]))
    assert out == {"misfit": pytest.approx(0.0375), "misfit_hard": 0.25, "misfit_n": 4}
    assert misfit(np.array([]), np.array([])) == {"misfit": None, "misfit_hard": None,
                                                    "misfit_n": 0}


def test_error_overlap_and_error_consistency_by_hand():
    # Floor wrong on items 3, 4, 7, 8; ceiling on item 9: no common error of the 5 -> overlap 0.
    # Same correctness on items 0, 1, 2, 5, 6: c_obs = 0.5; accuracies 0.6 and 0.9:
    # c_exp = 0.54 + 0.04 = 0.58; kappa = (0.5 - 0.58) / 0.42 = -4/21.
    assert error_agreement(Y, FLOOR, CEILING) == {
        "error_overlap": 0.0, "error_agreement_kappa": pytest.approx(-4 / 21)}
    # Floor vs student (wrong on 1, 8, 9): both wrong on item 8 of the 6 with an error -> 1/6;
    # same correctness on 0, 2, 5, 6, 8: c_obs = 0.5, c_exp = 0.6 * 0.7 + 0.4 * 0.3 = 0.54;
    # kappa = -0.04 / 0.46 = -2/23.
    assert error_agreement(Y, FLOOR, STUDENT) == {
        "error_overlap": pytest.approx(1 / 6), "error_agreement_kappa": pytest.approx(-2 / 23)}
    # Identical models: every error shared, kappa 1; two perfect models: both undefined.
    assert error_agreement(Y, FLOOR, FLOOR) == {"error_overlap": 1.0, "error_agreement_kappa": 1.0}
    assert error_agreement(Y, Y, Y) == {"error_overlap": None, "error_agreement_kappa": None}


def test_capa_by_hand():
    # c_obs per item = p_a p_b + (1 - p_a)(1 - p_b): 0.74, 0.46, 0.56, 0.5 -> mean 0.565.
    # Mean probability on the correct label: a (0.8, 0.6, 0.8, 0.4) 0.65, b (0.9, 0.3, 0.6, 0.5)
    # 0.575; c_exp = 0.65 * 0.575 + 0.35 * 0.425 = 0.5225; kappa_p = 0.0425 / 0.4775 = 17/191.
    labels = np.array([1, 1, 0, 0])
    assert capa(labels, np.array([0.8, 0.6, 0.2, 0.6]), np.array([0.9, 0.3, 0.4, 0.5])) \
        == pytest.approx(17 / 191)
    # With hard (0/1) predictions and two options CAPA is the error consistency: agreeing on the
    # prediction is agreeing on correctness.
    hard_floor, hard_ceiling = (FLOOR > 0.5).astype(float), (CEILING > 0.5).astype(float)
    assert capa(Y, hard_floor, hard_ceiling) == pytest.approx(-4 / 21)
    assert capa(Y, Y.astype(float), Y.astype(float)) is None  # c_exp = 1
    assert capa(np.array([]), np.array([]), np.array([])) is None


def test_holm_adjusts_step_down_by_hand():
    # Sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, raised to the
    # running maximum 0.06 so the adjusted values stay monotone). Back in input order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # None is passed through and not counted: m = 2 here. 0.3 x 2 = 0.6, then 0.7 x 1 -> 0.7.
    assert holm([None, 0.7, 0.3, None]) == [None, pytest.approx(0.7), pytest.approx(0.6), None]
    assert holm([0.4, 0.5, 0.6]) == [1.0, 1.0, 1.0]  # capped at 1
    assert holm([]) == [] and holm([None]) == [None]


def test_minimum_detectable_effect_by_hand():
    # z_0.975 + z_0.8 = 1.959964 + 0.841621 = 2.801585.
    # n = 100, 25 discordant: d = 0.25, sqrt(0.25 / 100) = 0.05 -> 0.140079.
    assert mde_paired(100, 25) == pytest.approx(2.801585 * 0.05, abs=1e-6)
    # METHOD.md's example: n = 64, d = 0.3 (19.2 discordant items) -> 2.8016 * 0.068465 = 0.19.
    assert mde_paired(64, 19.2) == pytest.approx(0.1918, abs=1e-4)
    # No discordant item counts as one: d = 1/16, sqrt(1/16 / 16) = 1/16 -> 0.175099.
    assert mde_paired(16, 0) == mde_paired(16, 1) == pytest.approx(2.801585 / 16, abs=1e-6)
    assert mde_paired(0, 0) is None
    # A stricter alpha or more power needs a larger difference.
    assert mde_paired(100, 25, alpha=0.01) > mde_paired(100, 25) < mde_paired(100, 25, power=0.9)


def test_mcnemar_counts_discordant_items_and_gives_the_exact_p_value():
    # Student right and floor wrong: items 3, 4, 7; floor right and student wrong: item 1, 9.
    result = mcnemar(Y, STUDENT, FLOOR)
    assert (result["only_arm_right"], result["only_baseline_right"]) == (3, 2)
    assert result["p_value"] == pytest.approx(1.0)  # 3 vs 2 of 5: two-sided exact p = 1
    result = mcnemar(Y, CEILING, 1 - CEILING)
    assert (result["only_arm_right"], result["only_baseline_right"]) == (9, 1)
    assert result["p_value"] == pytest.approx(2 * 11 / 1024)  # P(X <= 1 or X >= 9), X ~ Bin(10, 1/2)
    assert mcnemar(Y, FLOOR, FLOOR)["p_value"] == 1.0


def test_deception_regions_on_a_hand_computed_example():
    out = deception(Y, FLOOR, CEILING, STUDENT)
    regions = out["regions"]
    # weak-known ∩ strong-known: items 0,1,2,5,6 (item 9: floor right, ceiling wrong).
    assert regions["weak_known_strong_known"] == {"n": 5, "errors": 1, "error_rate": 0.2}
    assert regions["weak_known_strong_unknown"] == {"n": 1, "errors": 1, "error_rate": 1.0}
    # weak-unknown ∩ strong-known: items 3, 4, 7, 8; the student errs on item 8.
    assert regions["weak_unknown_strong_known"] == {"n": 4, "errors": 1, "error_rate": 0.25}
    assert regions["weak_unknown_strong_unknown"] == {"n": 0, "errors": 0, "error_rate": None}
    assert out["deception_score"] == 0.25
    assert out["deception_gap"] == pytest.approx(0.05)
    assert out["errors_in_wu_sk"] == pytest.approx(1 / 3)


def test_across_seeds_leaves_undefined_pgrs_out():
    out = across_seeds([0.2, None, 0.4, 0.6])
    assert out["n"] == 4 and out["n_defined"] == 3
    assert out["mean"] == pytest.approx(0.4) and out["median"] == pytest.approx(0.4)
    # t interval: 0.4 ± t(0.975, 2) * 0.2 / sqrt(3)
    assert out["ci_high"] - 0.4 == pytest.approx(4.302652729911275 * 0.2 / np.sqrt(3))
    assert across_seeds([None])["mean"] is None and across_seeds([0.3])["ci_low"] is None
