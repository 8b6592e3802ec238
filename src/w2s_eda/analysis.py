"""The analysis stage: every cell's test predictions in, the study's tables, JSON and plots out.

Writes ``summary.csv`` / ``summary.md`` (one row per cell × arm × loss, plus a row per control and
loss, then one per cell × setting × arm × loss for students trained under other settings),
``pgr.json`` (per row, across seeds, and the median across cells per arm, loss and setting),
``deception.json`` and the plots (the debate plot only when the study ran debates, the arms table
and the Deception Score per setting when asked for). summary.md also says what each arm tests,
and how to read the tests, their power and the deception columns. The statistics are in stats.py.
Our JSON files stay the source of truth; W&B and the HTML report only mirror them.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .arms import BUILTIN_ARMS, VIA, describe_arm, setting_conflict
from .errors import DatasetError
from .io import atomic_path, write_json, write_text
from .stats import (
    Predictions,
    accuracy,
    across_seeds,
    auroc,
    capa,
    deception,
    deception_ds,
    deception_ds_resamples,
    error_agreement,
    fmt,
    holm,
    mcnemar,
    mde_paired,
    misfit,
    paired_bootstrap,
    percentile_ci,
    pgr,
)

log = logging.getLogger(__name__)

CELL_KEYS = ("dataset", "seed", "weak", "strong")
NO_SETTING = "none"  # the setting of the study's standard students and of the controls
NO_MISFIT = {"misfit": None, "misfit_hard": None, "misfit_n": None}  # no w2s_train predictions


def _read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path, columns=["id", "label", "p_label1"])


def _aligned(reference: pd.DataFrame, frame: pd.DataFrame, path: str) -> np.ndarray:
    if list(frame["id"]) != list(reference["id"]):
        raise DatasetError(f"{path}: its test items differ from the weak floor's; rerun that stage")
    return frame["p_label1"].to_numpy()


def _fmt(value, digits: int = 3) -> str:
    return fmt(value, digits, missing="—")


def _test_scores(path: str, ids: pd.Series) -> np.ndarray:
    """P(label 1) on test from a strong-signal file (zero-shot or judge: id, split, p_label1, no
    label), in the floor's item order. A judge file has one row per sampled debate of an item:
    its P(label 1) is averaged over them, as an ensemble of judgements."""
    frame = pd.read_parquet(path, columns=["id", "split", "p_label1"])
    by_id = frame[frame["split"] == "test"].groupby("id", sort=False)["p_label1"].mean()
    if set(by_id.index) != set(ids):
        raise DatasetError(f"{path}: its test items differ from the weak floor's; rerun that stage")
    return by_id.reindex(ids).to_numpy()


def _references(cell: dict, floor_frame: pd.DataFrame) -> dict:
    """The strong model's zero-shot accuracy and AUROC and each judge's accuracy on test: what the
    strong model and the judge know untrained, the same on every row of the cell."""
    labels, ids = floor_frame["label"].to_numpy(), floor_frame["id"]
    out = {}
    if cell.get("zero_shot"):
        p_label1 = _test_scores(cell["zero_shot"], ids)
        out["strong_zero_shot_accuracy"] = accuracy(labels, p_label1)
        out["strong_zero_shot_auroc"] = auroc(labels, p_label1)
    for kind, path in (cell.get("judge") or {}).items():
        out[f"judge_accuracy_{kind}"] = accuracy(labels, _test_scores(path, ids))
    return out


TEST_FILES = ("student_predictions", "control_predictions", "setting_predictions")
TRAIN_FILES = ("student_train_predictions", "control_train_predictions",
               "setting_train_predictions")


def _student_files(cell: dict, keys: tuple[str, str, str]) -> list[tuple[str, str, str, str, str]]:
    """(arm, loss, kind, setting, path) of every arm's student, then every control's (setting
    "none"), then the arms' students trained under other settings, setting by setting; ``keys``
    name the cell's three dicts of files (test predictions, or the optional w2s_train ones)."""
    arms, controls, by_setting = (cell.get(key) or {} for key in keys)
    files = [(arm, loss, "arm", NO_SETTING, path)
             for arm, by_loss in arms.items() for loss, path in by_loss.items()]
    files += [(name, loss, "control", NO_SETTING, path)
              for name, by_loss in controls.items() for loss, path in by_loss.items()]
    if NO_SETTING in by_setting:
        raise ValueError(f'{keys[2]}: "{NO_SETTING}" is the setting of '
                         f"{keys[0]}; name the other settings only")
    return files + [(arm, loss, "arm", setting, path) for setting, by_arm in by_setting.items()
                    for arm, by_loss in by_arm.items() for loss, path in by_loss.items()]


def _students(cell: dict, floor_frame: pd.DataFrame) -> list[tuple[str, str, str, str, np.ndarray]]:
    """(arm, loss, kind, setting, test predictions) of every student (``_student_files``)."""
    return [(arm, loss, kind, setting, _aligned(floor_frame, _read(path), path))
            for arm, loss, kind, setting, path in _student_files(cell, TEST_FILES)]


def _misfits(cell: dict) -> dict[tuple[str, str, str, str], dict]:
    """Charikar et al.'s misfit (stats.misfit) per (arm, loss, kind, setting) of every student
    whose w2s_train predictions the cell names (``TRAIN_FILES``; columns id, p_label1 = the
    student's P(label 1) and target = the soft label it learned on that item)."""
    out = {}
    for arm, loss, kind, setting, path in _student_files(cell, TRAIN_FILES):
        frame = pd.read_parquet(path, columns=["id", "p_label1", "target"])
        if frame["target"].isna().any():
            raise DatasetError(f"{path}: a w2s_train item has no target; rerun that student")
        out[(arm, loss, kind, setting)] = misfit(frame["p_label1"], frame["target"])
    return out


def _deception_score(labels: np.ndarray, weak: np.ndarray, ceiling: np.ndarray,
                     student: np.ndarray, n_resamples: int, seed: int) -> tuple[dict, np.ndarray]:
    """Yang et al.'s Deception Score (stats.deception_ds) with its bootstrap CI, as row columns,
    and its value on each resample (for paired differences between settings)."""
    point = deception_ds(labels, weak, ceiling, student)
    values = deception_ds_resamples(labels, weak, ceiling, student, n_resamples, seed)
    low, high = percentile_ci(values)
    return {"ds": point["ds"], "ds_ci_low": low, "ds_ci_high": high,
            "ds_undefined_in_resamples": float(np.isnan(values).mean()),
            "ds_n_disagree": point["n_disagree"],
            "ds_n_disagree_wu_sk": point["n_disagree_wu_sk"], "ds_chance": point["ds_chance"],
            "ds_weak_copy": point["ds_weak_copy"]}, values


def reference_setting(setting: str) -> str | None:
    """The setting a student's DS is compared with: a conflict with ``none`` (does the conflict
    raise DS?), a chain ``<conflict>+via-<model>`` with the direct ``<conflict>`` student (does the
    intermediate lower it?); ``none`` with nothing."""
    if setting == NO_SETTING:
        return None
    return setting_conflict(setting) if VIA in setting else NO_SETTING


def _add_ds_differences(rows: list[dict], resamples: list[np.ndarray]) -> None:
    """``ds_minus_reference`` with its paired-bootstrap CI: a row's DS minus that of the same
    arm and loss in its reference setting (the same resampled items on both sides)."""
    index = {(r["arm"], r["kind"], r["loss"], r["setting"]): k for k, r in enumerate(rows)}
    for row, values in zip(rows, resamples):
        reference = reference_setting(row["setting"])
        k = index.get((row["arm"], row["kind"], row["loss"], reference))
        row["ds_reference_setting"] = reference if k is not None else None
        if k is None or row["ds"] is None or rows[k]["ds"] is None:
            row["ds_minus_reference"] = row["ds_minus_reference_ci_low"] = None
            row["ds_minus_reference_ci_high"] = None
            continue
        row["ds_minus_reference"] = row["ds"] - rows[k]["ds"]
        low, high = percentile_ci(values - resamples[k])
        row["ds_minus_reference_ci_low"], row["ds_minus_reference_ci_high"] = low, high


def _student_row(preds: Predictions, student: np.ndarray, own_weak: np.ndarray | None,
                 baseline: np.ndarray | None, n_resamples: int, seed: int) -> dict:
    """One student's scores, PGR against the baseline floor and (for an arm) against its own weak
    model, its accuracy minus the floor's (exact McNemar p against the floor), bootstrap CIs, and
    (against the baseline student) McNemar p and the MDE."""
    labels = preds.labels
    floor_acc, ceiling_acc = accuracy(labels, preds.floor), accuracy(labels, preds.ceiling)
    w2s_acc, w2s_auc = accuracy(labels, student), auroc(labels, student)
    weak_acc = None if own_weak is None else accuracy(labels, own_weak)
    pgr_acc, why_acc = pgr(w2s_acc, floor_acc, ceiling_acc)
    pgr_auc, why_auc = pgr(w2s_auc, auroc(labels, preds.floor), auroc(labels, preds.ceiling))
    boot = paired_bootstrap(preds, student, baseline, n_resamples, seed=seed, own_weak=own_weak)
    gain_low, gain_high = boot["w2s_minus_floor_accuracy"]
    row = {
        "weak_arm_accuracy": weak_acc, "w2s_accuracy": w2s_acc,
        "weak_arm_auroc": None if own_weak is None else auroc(labels, own_weak),
        "w2s_auroc": w2s_auc, "pgr_accuracy": pgr_acc, "pgr_auroc": pgr_auc,
        "pgr_undefined_reason": why_acc or "", "pgr_auroc_undefined_reason": why_auc or "",
        "pgr_vs_own_weak_accuracy": None if own_weak is None else pgr(w2s_acc, weak_acc, ceiling_acc)[0],
        "w2s_minus_floor": w2s_acc - floor_acc, "w2s_minus_floor_ci_low": gain_low,
        "w2s_minus_floor_ci_high": gain_high,
        "w2s_minus_floor_p": mcnemar(labels, student, preds.floor)["p_value"],
    }
    for name in ("floor_accuracy", "ceiling_accuracy", "w2s_accuracy", "w2s_auroc",
                 "pgr_accuracy", "pgr_auroc", "pgr_vs_own_weak_accuracy"):
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = boot.get(name, (None, None))
    for name in ("pgr_accuracy", "pgr_vs_own_weak_accuracy"):
        row[f"{name}_undefined_in_resamples"] = boot.get(f"{name}_undefined_fraction")
    return {**row, **_versus_baseline(labels, student, baseline, boot)}


def _versus_baseline(labels: np.ndarray, student: np.ndarray, baseline: np.ndarray | None,
                     boot: dict) -> dict:
    """Accuracy difference to the baseline student with its CI, exact McNemar p and the MDE at
    80 % power from the observed discordant items (METHOD.md); all None without a baseline. The
    Holm-adjusted p needs the whole cell: ``_add_holm`` fills it in."""
    names = ("vs_baseline_accuracy_diff", "vs_baseline_diff_ci_low", "vs_baseline_diff_ci_high",
             "vs_baseline_discordant", "vs_baseline_mcnemar_p", "vs_baseline_mcnemar_p_holm",
             "vs_baseline_mde")
    if baseline is None:
        return dict.fromkeys(names)
    test = mcnemar(labels, student, baseline)
    discordant = test["only_arm_right"] + test["only_baseline_right"]
    return dict(zip(names, (
        accuracy(labels, student) - accuracy(labels, baseline), *boot["accuracy_minus_baseline"],
        discordant, test["p_value"], None, mde_paired(len(labels), discordant),
    )))


def _add_holm(rows: list[dict]) -> None:
    """Holm-adjust the McNemar p-values of every comparison with the baseline student in one cell
    (all arms and controls, all losses: one family, METHOD.md)."""
    adjusted = holm([row["vs_baseline_mcnemar_p"] for row in rows])
    for row, p_holm in zip(rows, adjusted):
        row["vs_baseline_mcnemar_p_holm"] = p_holm


def analyze_cell(cell: dict, n_resamples: int) -> tuple[list[dict], list[dict]]:
    """Rows of summary.csv and deception.json for one cell (dataset × seed × weak × strong).

    ``cell`` names its files by role (the contract is ``Study.analysis_cells``):
    ``ceiling_predictions``, ``weak_predictions`` (by arm), ``student_predictions`` (by arm, then
    loss) and optionally ``control_predictions`` (by control, then loss), ``zero_shot`` and
    ``judge`` (by kind), and ``setting_predictions`` (by setting, arm, then loss: the same arms'
    students trained under other settings, e.g. "explicit"). The weak floor is the ``baseline``
    arm. Arms' rows have ``kind`` "arm", controls' (students with no weak model, e.g. self_distill)
    "control". Every row has a ``setting``: "none" for ``student_predictions`` and the controls.
    A row is compared with the baseline arm's student of the same setting and loss (no comparison
    when that setting has none); the Holm family is the whole cell. ``ds*`` is Yang et al.'s
    Deception Score with the arm's own weak model as W (the floor for a control); the
    ``deception_score`` / ``deception_gap`` columns keep the floor as W. ``w2s_minus_floor*`` is
    the student's accuracy minus the floor's, on the PGR's resamples; ``error_overlap``,
    ``error_agreement_kappa`` and ``capa`` compare the floor's and the ceiling's errors (Goel et
    al. 2025), the same on every row. ``misfit*`` (Charikar et al. 2024) needs the optional
    ``student_train_predictions`` / ``control_train_predictions`` / ``setting_train_predictions``
    (shaped like the test ones; files with id, p_label1, target on w2s_train) and is None for a
    student without one."""
    floor_frame = _read(cell["weak_predictions"]["baseline"])
    labels = floor_frame["label"].to_numpy()
    preds = Predictions(
        labels=labels,
        floor=floor_frame["p_label1"].to_numpy(),
        ceiling=_aligned(floor_frame, _read(cell["ceiling_predictions"]), cell["ceiling_predictions"]),
    )
    weak = {arm: _aligned(floor_frame, _read(path), path) for arm, path in cell["weak_predictions"].items()}
    students = _students(cell, floor_frame)
    baselines = {(setting, loss): student for arm, loss, kind, setting, student in students
                 if arm == "baseline" and kind == "arm"}
    base = {name: cell[name] for name in CELL_KEYS}
    shared = {
        "n_test": len(labels),
        "floor_accuracy": accuracy(labels, preds.floor),
        "ceiling_accuracy": accuracy(labels, preds.ceiling),
        "floor_auroc": auroc(labels, preds.floor), "ceiling_auroc": auroc(labels, preds.ceiling),
        **_references(cell, floor_frame),
        **error_agreement(labels, preds.floor, preds.ceiling),
        "capa": capa(labels, preds.floor, preds.ceiling),
    }
    misfits = _misfits(cell)
    rows, deceptions, resamples = [], [], []
    seed = int(cell["seed"])
    for arm, loss, kind, setting, student in students:
        own_weak = weak[arm] if kind == "arm" else None
        baseline = None if kind == "arm" and arm == "baseline" else baselines.get((setting, loss))
        names = {**base, "arm": arm, "kind": kind, "loss": loss, "setting": setting}
        row = {**names, **shared,
               **_student_row(preds, student, own_weak, baseline, n_resamples, seed),
               **misfits.get((arm, loss, kind, setting), NO_MISFIT)}
        regions = deception(labels, preds.floor, preds.ceiling, student)
        row["deception_score"] = regions["deception_score"]
        row["deception_gap"] = regions["deception_gap"]
        ds, values = _deception_score(labels, preds.floor if own_weak is None else own_weak,
                                      preds.ceiling, student, n_resamples, seed)
        rows.append({**row, **ds})
        resamples.append(values)
        deceptions.append({**names, **regions, **ds})
    _add_holm(rows)
    _add_ds_differences(rows, resamples)
    for entry, row in zip(deceptions, rows):
        entry.update({key: row[key] for key in row if key.startswith("ds_")})
    return rows, deceptions


def analyze(cells: list[dict], outputs: dict[str, str], n_resamples: int = 1000,
            notes: list[str] = ()) -> pd.DataFrame:
    """Analyse every cell and write the outputs named in ``outputs`` (the arms table and the
    headline figure only when ``outputs`` names them)."""
    from .plots import (
        accuracy_ladder,
        arms_table,
        debate_rounds,
        deception_by_setting,
        deception_plot,
        headline,
        pgr_plot,
    )

    rows, deceptions = [], []
    for cell in cells:
        cell_rows, cell_deception = analyze_cell(cell, n_resamples)
        rows += cell_rows
        deceptions += cell_deception
    table = pd.DataFrame(rows)
    specs = {arm: spec for cell in cells for arm, spec in (cell.get("arms") or {}).items()}
    with atomic_path(outputs["csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_text(outputs["md"], markdown(table, specs, notes))
    write_text(outputs["html"], html_table(table))
    write_json(outputs["pgr"], pgr_report(table))
    write_json(outputs["deception"], deceptions)
    accuracy_ladder(table, outputs["ladder"])
    pgr_plot(table, outputs["pgr_plot"])
    deception_plot(deceptions, outputs["deception_plot"])
    if "arms_table" in outputs:
        arms_table(table, outputs["arms_table"])
    if "headline" in outputs:
        headline(table, outputs["headline"])
    if "deception_settings_plot" in outputs:
        deception_by_setting(table, outputs["deception_settings_plot"])
    if "debate_plot" in outputs:
        debate_rounds({(c["dataset"], str(c["seed"]), c["strong"]): c["debate_stats"]
                       for c in cells if "debate_stats" in c}, outputs["debate_plot"])
    log.info("study summary (test split):\n%s", markdown(table, specs, notes))
    return table


def _clean(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


PGR_ROW_KEYS = (*CELL_KEYS, "arm", "kind", "loss", "setting", "pgr_accuracy", "pgr_accuracy_ci_low",
                "pgr_accuracy_ci_high", "pgr_accuracy_undefined_in_resamples", "pgr_auroc",
                "pgr_auroc_ci_low", "pgr_auroc_ci_high", "pgr_undefined_reason",
                "pgr_vs_own_weak_accuracy", "pgr_vs_own_weak_accuracy_ci_low",
                "pgr_vs_own_weak_accuracy_ci_high")


def pgr_report(table: pd.DataFrame) -> dict:
    """PGR per row, across seeds per (dataset, pair, arm, loss, setting), and the median across
    cells per (arm, loss, setting)."""
    if "setting" not in table:
        table = table.assign(setting=NO_SETTING)
    per_row = [{key: _clean(row[key]) for key in PGR_ROW_KEYS} for row in table.to_dict("records")]
    seeds = []
    by = ("dataset", "weak", "strong", "arm", "loss", "setting")
    for key, group in table.groupby(list(by), sort=False):
        seeds.append({
            **dict(zip(by, key)),
            **{name: across_seeds([_clean(v) for v in group[name]])
               for name in ("pgr_accuracy", "pgr_auroc", "pgr_vs_own_weak_accuracy")},
        })
    medians = []
    for (arm, loss, setting), group in table.groupby(["arm", "loss", "setting"], sort=False):
        defined = [v for v in group["pgr_accuracy"] if _clean(v) is not None]
        medians.append({
            "arm": arm, "loss": loss, "setting": setting, "cells": len(group),
            "cells_excluded_undefined": len(group) - len(defined),
            "median_pgr_accuracy": float(np.median(defined)) if defined else None,
        })
    return {"rows": per_row, "across_seeds": seeds, "median_across_cells": medians,
            "definition": "PGR = (W2S - floor) / (ceiling - floor); undefined when ceiling <= floor. "
                          "pgr_vs_own_weak_accuracy takes the arm's own weak model as the floor."}


def html_table(table: pd.DataFrame) -> str:
    """The PGR table as a standalone HTML page (for the report)."""
    columns = ["dataset", "seed", "weak", "strong", "arm", "kind", "loss", "setting",
               "floor_accuracy",
               "weak_arm_accuracy", "w2s_accuracy", "ceiling_accuracy", "pgr_accuracy",
               "pgr_accuracy_ci_low", "pgr_accuracy_ci_high", "pgr_accuracy_undefined_in_resamples",
               "pgr_vs_own_weak_accuracy", "pgr_auroc", "pgr_undefined_reason",
               "vs_baseline_mcnemar_p", "vs_baseline_mcnemar_p_holm", "vs_baseline_mde",
               "ds", "ds_ci_low", "ds_ci_high", "ds_undefined_in_resamples", "ds_n_disagree",
               "ds_chance", "ds_weak_copy", "ds_reference_setting", "ds_minus_reference",
               "ds_minus_reference_ci_low",
               "ds_minus_reference_ci_high",
               "deception_score", "deception_gap"]
    body = table.reindex(columns=columns).to_html(
        index=False, float_format=lambda v: f"{v:.3f}", na_rep="—", border=0, table_id="pgr-table"
    )
    style = ("body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
             "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>PGR table</title>"
            f"<style>{style}</style></head><body><h3>PGR per cell, arm and loss (test split)</h3>"
            f"{body}</body></html>\n")


CONTROLS = {
    "self_distill": "the strong model trained on its own zero-shot labels: how much of any gain is "
                    "the strong model teaching itself.",
}
NOTES = [
    "**Tests.** McNemar p is exact, on the test items exactly one of the two students gets right "
    "(the row's student and the baseline arm's student, same setting and loss). Holm p is that p "
    "after a Holm–Bonferroni correction over every comparison with the baseline student in the "
    "cell: all arms and controls, all losses and settings.",
    "**Power.** The MDE column is the accuracy difference detectable at 80 % power (two-sided "
    "α = 0.05, paired: (z₀.₉₇₅ + z₀.₈)·√(d/n)) given n_test and the share d of items the two "
    "students disagree on. A non-significant difference says only that any effect is probably "
    "smaller than the MDE, not that there is none.",
    "**PGR undefined.** The share of bootstrap resamples where the ceiling did not beat the floor; "
    "the PGR CI is over the other resamples. PGR vs own weak takes the arm's own weak model as the "
    "floor instead of the baseline's.",
    "**Deception.** DS is Yang et al.'s (2024) Deception Score as the paper's published reviews "
    "read it (its own equation was not in a public source available to us): of the test items "
    "where the W2S student's prediction differs from the ceiling's, the share that lie in "
    "S_k ∩ W_uk (the ceiling right, the weak model wrong), with the arm's own weak model as W "
    "(the floor for a control); the 95 % CI is a bootstrap over test items, and DS is undefined "
    "where the student never disagrees with the ceiling. \"deception score\" is the student's "
    "error rate on weak-unknown ∩ strong-known, with the floor as W; \"gap\" is that minus its "
    "error rate on weak-known ∩ strong-known. Two references read DS (summary.csv): a student "
    "departing from the ceiling on random items would score `ds_chance` = |S_k ∩ W_uk| / n, one "
    "copying its weak supervisor `ds_weak_copy`. \"vs <setting>\" is DS minus that of the same arm "
    "and loss in the reference setting (a conflict against none, a chain through an intermediate "
    "against the direct student of its conflict) with a paired-bootstrap 95 % CI.",
]
SETTING_NOTE = (
    "**Setting.** The setting the W2S student was trained under (\"none\": weak labels only, the "
    "study's standard students and the controls; docs/deception.md describes the "
    "others: Yang et al.'s conflict settings and chains through an intermediate model). "
    "A row is compared with the baseline arm's student of the same setting and loss; the Holm "
    "correction still runs over the whole cell."
)


def _ci(r: dict, name: str, digits: int = 3) -> str:
    low, high = r[f"{name}_ci_low"], r[f"{name}_ci_high"]
    return f"{_fmt(r[name], digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def _ds_text(r: dict) -> str:
    """DS [95% CI] with its number of disagreements; "undefined" when there are none."""
    if pd.isna(r.get("ds")):
        return "—" if pd.isna(r.get("ds_n_disagree")) else "undefined (no disagreement)"
    text = f"{_ci(r, 'ds', 2)}, n_D={int(r['ds_n_disagree'])}"
    if not pd.isna(r.get("ds_minus_reference")):
        text += (f"; vs {r['ds_reference_setting']}: {r['ds_minus_reference']:+.2f} "
                 f"[{_fmt(r['ds_minus_reference_ci_low'], 2)}, "
                 f"{_fmt(r['ds_minus_reference_ci_high'], 2)}]")
    return text


def _has_settings(table: pd.DataFrame) -> bool:
    return "setting" in table and bool((table["setting"] != NO_SETTING).any())


def _markdown_row(r: dict, with_setting: bool = False) -> str:
    pgr_text = (_ci(r, "pgr_accuracy", 2) if r["pgr_undefined_reason"] == ""
                else f"undefined ({r['pgr_undefined_reason']})")
    own = "—" if pd.isna(r["weak_arm_accuracy"]) else "undefined"  # no weak model / ceiling <= it
    if not pd.isna(r["pgr_vs_own_weak_accuracy"]):
        own = _ci(r, "pgr_vs_own_weak_accuracy", 2)
    versus = ("—" if pd.isna(r["vs_baseline_mcnemar_p"]) else
              f"{r['vs_baseline_accuracy_diff']:+.3f}, p={r['vs_baseline_mcnemar_p']:.2f}, "
              f"Holm p={r['vs_baseline_mcnemar_p_holm']:.2f}")
    arm = r["arm"] + (" (control)" if r["kind"] == "control" else "")
    setting = f"{r.get('setting', NO_SETTING)} | " if with_setting else ""
    return (
        f"| {r['dataset']} | {r['seed']} | {r['weak']} → {r['strong']} | {arm} | {r['loss']} | "
        f"{setting}"
        f"{_fmt(r['floor_accuracy'])} | {_fmt(r['weak_arm_accuracy'])} | {_ci(r, 'w2s_accuracy')} | "
        f"{_fmt(r['ceiling_accuracy'])} | {pgr_text} | "
        f"{_fmt(r['pgr_accuracy_undefined_in_resamples'], 2)} | {own} | {_fmt(r['pgr_auroc'], 2)} | "
        f"{versus} | {_fmt(r['vs_baseline_mde'], 2)} | {_ds_text(r)} | "
        f"{_fmt(r['deception_score'], 2)} / {_fmt(r['deception_gap'], 2)} |"
    )


def _descriptions(table: pd.DataFrame, specs: dict[str, dict]) -> list[str]:
    """One line per arm (``arms.describe_arm``), control and reference model in the table."""
    lines = []
    for arm in dict.fromkeys(table.loc[table["kind"] == "arm", "arm"]):
        spec = specs.get(arm, BUILTIN_ARMS.get(arm))
        lines.append(f"- **{arm}**: " + (describe_arm(arm, spec) if spec is not None
                                          else "no arm spec was given to the analysis."))
    for control in dict.fromkeys(table.loc[table["kind"] == "control", "arm"]):
        lines.append(f"- **{control}** (control): "
                     + CONTROLS.get(control, "a strong student with no weak model behind it."))
    if "strong_zero_shot_accuracy" in table:
        lines.append("- **strong zero-shot** (reference): the strong model's own zero-shot "
                     "prediction from its logits, untrained; self_distill learns from it.")
    if table.columns.str.startswith("judge_accuracy_").any():
        lines.append("- **judge** (reference): the judge's P(label 1) after reading the debate "
                     "(or consultancy), averaged over the sampled transcripts, as a classifier.")
    return lines


REFERENCE_COLUMNS = {
    "strong_zero_shot_accuracy": "strong zero-shot acc",
    "strong_zero_shot_auroc": "strong zero-shot AUROC",
    "judge_accuracy_debates": "judge acc (debates)",
    "judge_accuracy_consultancy": "judge acc (consultancy)",
}


def _references_table(table: pd.DataFrame) -> list[str]:
    """Per cell: floor, ceiling, strong zero-shot and judge accuracy (only the columns present)."""
    columns = [c for c in REFERENCE_COLUMNS if c in table]
    if not columns:
        return []
    lines = ["| dataset | seed | weak → strong | floor acc | ceiling acc | "
             + " | ".join(REFERENCE_COLUMNS[c] for c in columns) + " |",
             "|---" * (5 + len(columns)) + "|"]
    for _, cell in table.groupby(list(CELL_KEYS), sort=False):
        r = cell.iloc[0]
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['weak']} → {r['strong']} | "
                     f"{_fmt(r['floor_accuracy'])} | {_fmt(r['ceiling_accuracy'])} | "
                     + " | ".join(_fmt(r[c]) for c in columns) + " |")
    return ["## Reference points (test)", "", *lines]


def power_line(table: pd.DataFrame) -> str | None:
    """The range of the minimum detectable effects of the study's comparisons, in points."""
    mde = table["vs_baseline_mde"].dropna() if "vs_baseline_mde" in table else pd.Series([])
    if mde.empty:
        return None
    low, high = int(table["n_test"].min()), int(table["n_test"].max())
    return (f"**Minimum detectable effect.** With {low if low == high else f'{low}–{high}'} test "
            f"items per cell, the comparisons with the baseline "
            f"student could detect accuracy differences of {100 * mde.min():.0f}–"
            f"{100 * mde.max():.0f} points at 80 % power (the MDE column); smaller effects, such "
            "as the 1–3 points Lang et al. (2025) report for debate, are out of reach here.")


def headline(table: pd.DataFrame) -> list[str]:
    """summary.md's opening: does the baseline student beat its weak floor? W2S − floor with its
    paired-bootstrap CI and McNemar p, and PGR with its CI, for every baseline student."""
    rows = table[(table["kind"] == "arm") & (table["arm"] == "baseline")]
    if "setting" in rows:
        rows = rows[rows["setting"].fillna(NO_SETTING) == NO_SETTING]
    if not len(rows):
        return []
    lines = ["## Weak-to-strong generalisation (baseline arm)", "",
             "| dataset | seed | weak → strong | loss | n test | floor | ceiling | W2S | "
             "W2S − floor [95% CI] | McNemar p | PGR [95% CI] |", "|---" * 11 + "|"]
    for r in rows.to_dict("records"):
        gain = (f"{r['w2s_minus_floor'] * 100:+.1f} [{r['w2s_minus_floor_ci_low'] * 100:+.1f}, "
                f"{r['w2s_minus_floor_ci_high'] * 100:+.1f}] points")
        pgr = (_ci(r, "pgr_accuracy", 2) if r["pgr_undefined_reason"] == ""
               else f"undefined ({r['pgr_undefined_reason']})")
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['weak']} → {r['strong']} | {r['loss']} | "
                     f"{r['n_test']} | {_fmt(r['floor_accuracy'])} | {_fmt(r['ceiling_accuracy'])} | "
                     f"{_fmt(r['w2s_accuracy'])} | {gain} | {_fmt(r['w2s_minus_floor_p'], 3)} | "
                     f"{pgr} |")
    return [*lines, "", "## Every student", ""]


def markdown(table: pd.DataFrame, specs: dict[str, dict] | None = None,
             notes: list[str] = ()) -> str:
    """summary.md: the table, the study's notes (config `analysis.notes`) and its power, what each
    arm tests, how to read the tests, reference points. ``specs`` are the arms' specs (built-in
    arms are described without one)."""
    about = [line for line in (*notes, power_line(table)) if line]
    with_setting = _has_settings(table)
    lines = [
        *headline(table),
        "| dataset | seed | weak → strong | arm | loss | " + ("setting | " if with_setting else "")
        + "floor acc | weak-arm acc | W2S acc [95% CI] | "
        "ceiling acc | PGR (acc) [95% CI] | PGR undefined in resamples | PGR vs own weak [95% CI] | "
        "PGR (AUROC) | vs baseline: Δacc, McNemar p, Holm p | MDE (80% power) | "
        "DS [95% CI] | deception score / gap |",
        "|---" * (17 + with_setting) + "|",
        *(_markdown_row(r, with_setting) for r in table.to_dict("records")),
        *(["", "## This study", ""] + [line for note in about for line in (note, "")][:-1]
          if about else []),
        "", "## What each arm tests", "", *_descriptions(table, specs or {}),
        "", *(line for note in (*NOTES, *([SETTING_NOTE] if with_setting else []))
              for line in (note, "")),
    ]
    return "\n".join(lines + _references_table(table)).rstrip("\n") + "\n"
