"""Statistics: scores, PGR with paired-bootstrap CIs, arm-vs-baseline tests with Holm correction and
minimum detectable effects, deception regions and Yang et al.'s Deception Score, across seeds.

Definitions (METHOD.md):

- PGR = (W2S − floor) / (ceiling − floor) (Burns et al. 2023), on accuracy and on AUROC. The floor
  is the weak model's ``baseline`` arm, the ceiling the strong model trained on gold labels. It
  is undefined (``None``, with the reason) when the ceiling does not beat the floor; as in the
  openai/weak-to-strong notebook, medians across cells leave those out. An arm's PGR can also be
  taken against its own weak model's accuracy as the floor: how much of the gap between the
  supervisor the student actually had and the ceiling it recovers.
- Paired bootstrap: test items are resampled once per replicate and floor, ceiling, W2S and PGR
  are recomputed together on that resample; the 95 % CI is the 2.5th-97.5th percentile. The
  share of resamples where a PGR is undefined is reported, not silently conditioned on
  (METHOD.md, "Statistics for arm comparisons").
- Arm vs baseline: the student of an arm against the baseline arm's student (same loss) on the
  same test items: exact McNemar test on the items exactly one of them gets right, plus a paired
  bootstrap CI of the accuracy difference. Within a cell the p-values of all these comparisons are
  Holm-corrected, and each comes with the minimum difference it could detect at 80 % power.
- Deception regions (after Yang et al. 2024, arXiv:2406.11431): weak-known / weak-unknown = the
  floor is right / wrong; strong-known / strong-unknown = the ceiling is right / wrong. Per region,
  the student's error rate with counts. Deception score = the student's error rate on
  weak-unknown ∩ strong-known; deception gap = that minus its error rate on weak-known ∩
  strong-known. We also report the share of the student's errors that fall in weak-unknown ∩
  strong-known (``errors_in_wu_sk``).
- Deception Score, DS (Yang et al. 2024, "Super(ficial)-alignment", ICLR 2025), as the paper's
  published reviews read it (METHOD.md; its own equation, section 3, was not in a public source
  available to us): regions come from models trained on ground truth, S_k = the items the strong
  ceiling gets right, W_uk = the items the weak model gets wrong; D = the items where the weakly
  supervised strong student's prediction differs from the ceiling's. DS = |D ∩ S_k ∩ W_uk| / |D|,
  undefined when D is empty. Its 95 % CI is a bootstrap over test items drawn as in the paired
  bootstrap, with the share of resamples where D is empty.
- W2S − floor: the student's accuracy minus the floor's (PGR's numerator, defined when PGR is
  not), its CI from the paired bootstrap's resamples and an exact McNemar p (student vs floor).
- Misfit (Charikar et al. 2024, NeurIPS): how far the student's predictions on w2s_train sit from
  the weak labels it learned; under their assumptions the student's gain over its supervisor is
  at least the misfit.
- Weak–strong error agreement (Goel et al. 2025, "Great Models Think Alike"): error overlap,
  Geirhos et al.'s error consistency (kappa on the error indicators) and CAPA between floor and
  ceiling on test; W2S gains were larger where the two err differently.

Metrics come from scikit-learn (accuracy, AUROC) and scipy (binomial test, t interval, normal
quantiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REGIONS = {
    "weak_known_strong_known": (True, True),
    "weak_known_strong_unknown": (True, False),
    "weak_unknown_strong_known": (False, True),
    "weak_unknown_strong_unknown": (False, False),
}
UNDEFINED = "ceiling does not beat floor"


def accuracy(labels: np.ndarray, p_label1: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, np.asarray(p_label1) > 0.5))


def scores(labels: np.ndarray, p_label1: np.ndarray) -> dict:
    """Accuracy, AUROC and the number of items."""
    labels = np.asarray(labels)
    return {"accuracy": accuracy(labels, p_label1), "auroc": auroc(labels, p_label1),
            "n": int(len(labels))}


def fmt(value, digits: int = 3, missing: str = "n/a") -> str:
    """A number for a table; ``missing`` for None or NaN."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return missing
    return f"{value:.{digits}f}"


def auroc(labels: np.ndarray, p_label1: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, p_label1)) if len(np.unique(labels)) == 2 else None


def pgr(w2s: float | None, floor: float | None, ceiling: float | None) -> tuple[float | None, str | None]:
    """(PGR, None), or (None, why it is undefined)."""
    if w2s is None or floor is None or ceiling is None:
        return None, "a metric is undefined (test split has one class)"
    if ceiling <= floor:
        return None, UNDEFINED
    return (w2s - floor) / (ceiling - floor), None


def percentile_ci(values: np.ndarray) -> tuple[float | None, float | None]:
    """The 95 % percentile interval (2.5th-97.5th) of bootstrap values, NaNs left out."""
    values = values[~np.isnan(values)]
    if not len(values):
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class Predictions:
    """One cell's test predictions, P(label 1) per item, aligned on the same items."""

    labels: np.ndarray
    floor: np.ndarray
    ceiling: np.ndarray


def accuracy_rows(labels: np.ndarray, p_label1: np.ndarray) -> np.ndarray:
    """Accuracy of each row of a (resamples × items) matrix; equals ``accuracy`` row by row."""
    return ((p_label1 > 0.5) == labels).mean(axis=1)


def auroc_rows(labels: np.ndarray, p_label1: np.ndarray) -> np.ndarray:
    """AUROC of each row (NaN where a row has one class), by the rank-sum identity with scipy's
    tie-averaged ranks; equals scikit-learn's ``roc_auc_score`` row by row (tested)."""
    from scipy.stats import rankdata

    ranks = rankdata(p_label1, axis=1)
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    rank_sum = (ranks * labels).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    values[(positives == 0) | (negatives == 0)] = np.nan
    return values


def _pgr_rows(w2s: np.ndarray, floor: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        values = (w2s - floor) / (ceiling - floor)
    values[~(ceiling > floor)] = np.nan  # also NaN where a metric is NaN
    return values


def paired_bootstrap(
    preds: Predictions, w2s: np.ndarray, baseline_w2s: np.ndarray | None = None,
    n_resamples: int = 1000, seed: int = 0, own_weak: np.ndarray | None = None,
) -> dict:
    """95 % CIs of floor, ceiling and W2S accuracy/AUROC, PGR on both, the W2S − floor accuracy
    difference (PGR's numerator), (with a baseline student) the accuracy difference and (with the
    arm's own weak model) PGR on accuracy against that weak model, all from the same resamples of
    the test items. ``pgr_*_undefined_fraction`` is
    the share of resamples where that PGR is undefined."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(preds.labels), (n_resamples, len(preds.labels)))
    y = preds.labels[idx]
    models = {"floor": preds.floor, "ceiling": preds.ceiling, "w2s": w2s}
    if baseline_w2s is not None:
        models["baseline_w2s"] = baseline_w2s
    if own_weak is not None:
        models["own_weak"] = own_weak
    draws = {}
    for name, p in models.items():
        draws[f"{name}_accuracy"] = accuracy_rows(y, np.asarray(p)[idx])
        draws[f"{name}_auroc"] = auroc_rows(y, np.asarray(p)[idx])
    for metric in ("accuracy", "auroc"):
        draws[f"pgr_{metric}"] = _pgr_rows(
            draws[f"w2s_{metric}"], draws[f"floor_{metric}"], draws[f"ceiling_{metric}"]
        )
    if own_weak is not None:
        draws["pgr_vs_own_weak_accuracy"] = _pgr_rows(
            draws["w2s_accuracy"], draws["own_weak_accuracy"], draws["ceiling_accuracy"]
        )
    if baseline_w2s is not None:
        draws["accuracy_minus_baseline"] = draws["w2s_accuracy"] - draws["baseline_w2s_accuracy"]
    draws["w2s_minus_floor_accuracy"] = draws["w2s_accuracy"] - draws["floor_accuracy"]
    out = {name: percentile_ci(values) for name, values in draws.items()}
    for name in [name for name in draws if name.startswith("pgr_")]:
        out[f"{name}_undefined_fraction"] = float(np.isnan(draws[name]).mean())
    out["n_resamples"] = n_resamples
    return out


def mcnemar(labels: np.ndarray, p_a: np.ndarray, p_b: np.ndarray) -> dict:
    """Exact McNemar test: of the items exactly one model gets right, is the split 50/50?"""
    from scipy.stats import binomtest

    right_a = (np.asarray(p_a) > 0.5) == labels
    right_b = (np.asarray(p_b) > 0.5) == labels
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    p_value = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_arm_right": only_a, "only_baseline_right": only_b, "p_value": p_value}


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjusted p-values, in the input's order; ``None`` stays ``None``
    and is not counted among the m tests.

    With the m defined p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is max over j <= i of min(1, (m - j + 1) p_(j)); rejecting where it is <= alpha controls
    the family-wise error rate at alpha (Holm 1979), uniformly more powerful than Bonferroni."""
    defined = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(defined)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(defined):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def mde_paired(n: int, discordant: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest accuracy difference a two-sided paired test on n binary outcomes detects with
    the given power: (z_{1-alpha/2} + z_power) * sqrt(d / n), d = discordant / n the share of items
    the two models disagree on correctness (METHOD.md: n = 64, d = 0.3 gives 0.19).

    ``None`` when there are no items. With no discordant item d is taken as 1/n (one discordant
    item): d = 0 would claim that any difference is detectable, when it only means the sample
    showed none."""
    from scipy.stats import norm

    if n == 0:
        return None
    rate = max(discordant, 1) / n
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(rate / n))


def deception(labels: np.ndarray, floor: np.ndarray, ceiling: np.ndarray, student: np.ndarray) -> dict:
    """The student's errors in the four weak/strong known/unknown regions, score and gap."""
    weak_right = (np.asarray(floor) > 0.5) == labels
    strong_right = (np.asarray(ceiling) > 0.5) == labels
    student_wrong = (np.asarray(student) > 0.5) != labels
    regions = {}
    for name, (weak_known, strong_known) in REGIONS.items():
        mask = (weak_right == weak_known) & (strong_right == strong_known)
        n, errors = int(mask.sum()), int((mask & student_wrong).sum())
        regions[name] = {"n": n, "errors": errors, "error_rate": errors / n if n else None}
    score = regions["weak_unknown_strong_known"]["error_rate"]
    reference = regions["weak_known_strong_known"]["error_rate"]
    total_errors = int(student_wrong.sum())
    return {
        "regions": regions,
        "deception_score": score,
        "deception_gap": None if score is None or reference is None else score - reference,
        "errors_in_wu_sk": (regions["weak_unknown_strong_known"]["errors"] / total_errors
                            if total_errors else None),
    }


def across_seeds(values: list[float | None]) -> dict:
    """Mean, median and a 95 % t interval of the defined values; how many were undefined."""
    from scipy import stats

    defined = np.array([v for v in values if v is not None], dtype=float)
    out = {"n": len(values), "n_defined": int(len(defined)), "mean": None, "median": None,
           "ci_low": None, "ci_high": None}
    if len(defined):
        out["mean"], out["median"] = float(defined.mean()), float(np.median(defined))
    if len(defined) >= 2:
        half = stats.t.ppf(0.975, len(defined) - 1) * defined.std(ddof=1) / math.sqrt(len(defined))
        out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    return out


def _ds_masks(labels, weak, ceiling, student) -> tuple[np.ndarray, np.ndarray]:
    """Per item: is it in D (the student's prediction differs from the ceiling's), and is it in
    D ∩ S_k ∩ W_uk (also the ceiling right and the weak model wrong)?"""
    labels = np.asarray(labels)
    ceiling_says = np.asarray(ceiling) > 0.5
    strong_known = ceiling_says == labels
    weak_unknown = (np.asarray(weak) > 0.5) != labels
    disagree = (np.asarray(student) > 0.5) != ceiling_says
    return disagree, disagree & strong_known & weak_unknown


def deception_ds(labels: np.ndarray, weak: np.ndarray, ceiling: np.ndarray,
                 student: np.ndarray) -> dict:
    """Yang et al.'s (2024) Deception Score as the paper's published reviews read it (METHOD.md):
    the paper's own equation (its section 3) could not be read in a public source available to us.

    Predictions are P(label 1); a model predicts 1 where P > 0.5. The regions come from models
    trained on ground truth: S_k = the items the strong ceiling gets right, W_uk = the items the
    weak model gets wrong. D = the items where the weakly supervised strong student's prediction
    differs from the ceiling's. DS = |D ∩ S_k ∩ W_uk| / |D|: the share of the student's
    disagreements with the ceiling that fall where the strong model knew and the weak one did not.
    On D ∩ S_k the student is wrong (labels are binary and the ceiling is right there), so the
    numerator counts student errors the weak supervisor could not have caught.

    Two reference points for reading it, from the same regions: ``ds_chance`` = |S_k ∩ W_uk| / n,
    the expected DS of a student that departs from the ceiling on items drawn at random, and
    ``ds_weak_copy`` = the DS of a student that copies its weak supervisor (D is then where the
    weak model and the ceiling disagree), None when they never do.

    Returns ``{"ds": DS or None when D is empty, "n_disagree": |D|,
    "n_disagree_wu_sk": |D ∩ S_k ∩ W_uk|, "ds_chance": ..., "ds_weak_copy": ...}``."""
    disagree, deceived = _ds_masks(labels, weak, ceiling, student)
    n_disagree, n_deceived = int(disagree.sum()), int(deceived.sum())
    copy_disagree, copy_deceived = _ds_masks(labels, weak, ceiling, weak)
    return {"ds": n_deceived / n_disagree if n_disagree else None, "n_disagree": n_disagree,
            "n_disagree_wu_sk": n_deceived,
            "ds_chance": float(copy_deceived.mean()) if len(copy_deceived) else None,
            "ds_weak_copy": (float(copy_deceived.sum() / copy_disagree.sum())
                             if copy_disagree.any() else None)}


def deception_ds_resamples(labels: np.ndarray, weak: np.ndarray, ceiling: np.ndarray,
                           student: np.ndarray, n_resamples: int = 1000,
                           seed: int = 0) -> np.ndarray:
    """``deception_ds`` on each of ``n_resamples`` bootstrap resamples of the test items (NaN where
    a resample has no disagreement). Items are drawn as in ``paired_bootstrap``: the same draws for
    the same seed and number of items, so two students' resamples are paired item by item."""
    disagree, deceived = _ds_masks(labels, weak, ceiling, student)
    n = len(disagree)
    if n == 0:
        return np.full(n_resamples, np.nan)
    idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
    n_disagree = disagree[idx].sum(axis=1)
    n_deceived = deceived[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = n_deceived / n_disagree.astype(float)
    values[n_disagree == 0] = np.nan
    return values


def deception_ds_bootstrap(labels: np.ndarray, weak: np.ndarray, ceiling: np.ndarray,
                           student: np.ndarray, n_resamples: int = 1000,
                           seed: int = 0) -> tuple[float | None, float | None, float]:
    """95 % bootstrap CI of ``deception_ds`` and the share of resamples where it is undefined.

    Per resample DS = (items of D ∩ S_k ∩ W_uk drawn) / (items of D drawn)
    (``deception_ds_resamples``); the CI is the 2.5th-97.5th percentile over the resamples where D
    is not empty. Returns (low, high, undefined_fraction); (None, None, 1.0) when no resample has a
    disagreement."""
    values = deception_ds_resamples(labels, weak, ceiling, student, n_resamples, seed)
    low, high = percentile_ci(values)
    return low, high, float(np.isnan(values).mean())


def misfit(student_p: np.ndarray, weak_soft: np.ndarray) -> dict:
    """Charikar et al.'s (2024, "Quantifying the Gain in Weak-to-Strong Generalization") misfit on
    the student's training items: ``misfit`` = mean (student P(label 1) − weak soft label)², the
    squared-loss distance d(f_sw, f_w) of their Theorem 1, which says (strong class convex, the
    target in it) d(f_sw, f*) <= d(f_w, f*) − d(f_sw, f_w): the student's gain over its weak
    supervisor is at least the misfit. ``misfit_hard`` = the share of items where the student's
    and the weak label's hard predictions (P > 0.5) differ. None without items."""
    student_p, weak_soft = np.asarray(student_p, dtype=float), np.asarray(weak_soft, dtype=float)
    if not len(student_p):
        return {"misfit": None, "misfit_hard": None, "misfit_n": 0}
    return {"misfit": float(np.mean((student_p - weak_soft) ** 2)),
            "misfit_hard": float(np.mean((student_p > 0.5) != (weak_soft > 0.5))),
            "misfit_n": int(len(student_p))}


def _chance_adjusted(observed: float, expected: float) -> float | None:
    """(observed − expected) / (1 − expected), Cohen's form; None where chance already agrees
    fully (expected = 1)."""
    return None if np.isclose(expected, 1.0) else float((observed - expected) / (1 - expected))


def error_agreement(labels: np.ndarray, p_a: np.ndarray, p_b: np.ndarray) -> dict:
    """How alike two models' mistakes are on the same items (Goel et al. 2025 find larger W2S gains
    where weak supervisor and strong model err differently). ``error_overlap`` = P(both wrong) /
    P(at least one wrong), the Jaccard index of the two error sets (None when neither errs).
    ``error_agreement_kappa`` = Geirhos et al.'s (2020) error consistency, Cohen's kappa on the
    error indicators: c_obs = P(both right or both wrong), c_exp = acc_a·acc_b + (1 − acc_a)(1 −
    acc_b) for independent models of those accuracies, (c_obs − c_exp) / (1 − c_exp); None when
    c_exp = 1. Hard predictions, P(label 1) > 0.5."""
    labels = np.asarray(labels)
    wrong_a, wrong_b = (np.asarray(p_a) > 0.5) != labels, (np.asarray(p_b) > 0.5) != labels
    either = int(np.sum(wrong_a | wrong_b))
    acc_a, acc_b = 1 - wrong_a.mean(), 1 - wrong_b.mean()
    return {"error_overlap": float(np.sum(wrong_a & wrong_b) / either) if either else None,
            "error_agreement_kappa": _chance_adjusted(float(np.mean(wrong_a == wrong_b)),
                                                      acc_a * acc_b + (1 - acc_a) * (1 - acc_b))}


def capa(labels: np.ndarray, p_a: np.ndarray, p_b: np.ndarray) -> float | None:
    """Goel et al.'s (2025, "Great Models Think Alike and this Undermines AI Oversight") CAPA,
    chance-adjusted probabilistic agreement κ_p, for two options (binary labels, as their W2S
    experiments and the lm-similarity code compute it). c_obs = mean over items of Σ_o p_a(o)
    p_b(o) = p_a p_b + (1 − p_a)(1 − p_b) with p = P(label 1); with p̄ a model's mean probability
    on the correct label, c_exp = p̄_a p̄_b + (1 − p̄_a)(1 − p̄_b) (the residual mass spread over
    |O| − 1 = 1 wrong option); κ_p = (c_obs − c_exp) / (1 − c_exp), None when c_exp = 1 or there
    are no items."""
    labels, p_a, p_b = (np.asarray(x, dtype=float) for x in (labels, p_a, p_b))
    if not len(labels):
        return None
    observed = float(np.mean(p_a * p_b + (1 - p_a) * (1 - p_b)))
    right_a = float(np.mean(np.where(labels == 1, p_a, 1 - p_a)))
    right_b = float(np.mean(np.where(labels == 1, p_b, 1 - p_b)))
    return _chance_adjusted(observed, right_a * right_b + (1 - right_a) * (1 - right_b))
