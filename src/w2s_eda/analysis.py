"""The analysis stage: every cell's test predictions in, the study's tables, JSON and plots out.

Writes ``summary.csv`` / ``summary.md`` (one row per cell × arm × loss), ``pgr.json`` (per row,
across seeds, and the median across cells per arm and loss), ``deception.json`` and the plots
(the debate plot only when the study ran debates). The statistics are in stats.py.
Our JSON files stay the source of truth; W&B and the HTML report only mirror them.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .errors import DatasetError
from .io import atomic_path, write_json, write_text
from .stats import (
    Predictions,
    accuracy,
    across_seeds,
    auroc,
    deception,
    fmt,
    mcnemar,
    paired_bootstrap,
    pgr,
)

log = logging.getLogger(__name__)

CELL_KEYS = ("dataset", "seed", "weak", "strong")


def _read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path, columns=["id", "label", "p_label1"])


def _aligned(reference: pd.DataFrame, frame: pd.DataFrame, path: str) -> np.ndarray:
    if list(frame["id"]) != list(reference["id"]):
        raise DatasetError(f"{path}: its test items differ from the weak floor's; rerun that stage")
    return frame["p_label1"].to_numpy()


def _fmt(value, digits: int = 3) -> str:
    return fmt(value, digits, missing="—")


def analyze_cell(cell: dict, n_resamples: int) -> tuple[list[dict], list[dict]]:
    """Rows of summary.csv and deception.json for one cell (dataset × seed × weak × strong).

    ``cell`` names its files by role: ``ceiling_predictions``, ``weak_predictions`` (by arm) and
    ``student_predictions`` (by arm, then loss); the weak floor is the ``baseline`` arm."""
    floor_frame = _read(cell["weak_predictions"]["baseline"])
    labels = floor_frame["label"].to_numpy()
    preds = Predictions(
        labels=labels,
        floor=floor_frame["p_label1"].to_numpy(),
        ceiling=_aligned(floor_frame, _read(cell["ceiling_predictions"]), cell["ceiling_predictions"]),
    )
    weak = {arm: _aligned(floor_frame, _read(path), path) for arm, path in cell["weak_predictions"].items()}
    students = {
        (arm, loss): _aligned(floor_frame, _read(path), path)
        for arm, by_loss in cell["student_predictions"].items() for loss, path in by_loss.items()
    }
    base = {name: cell[name] for name in CELL_KEYS}
    floor_acc, ceiling_acc = accuracy(labels, preds.floor), accuracy(labels, preds.ceiling)
    floor_auc, ceiling_auc = auroc(labels, preds.floor), auroc(labels, preds.ceiling)
    rows, deceptions = [], []
    for (arm, loss), student in students.items():
        baseline = students.get(("baseline", loss))
        w2s_acc, w2s_auc = accuracy(labels, student), auroc(labels, student)
        pgr_acc, why_acc = pgr(w2s_acc, floor_acc, ceiling_acc)
        pgr_auc, why_auc = pgr(w2s_auc, floor_auc, ceiling_auc)
        boot = paired_bootstrap(
            preds, student, None if arm == "baseline" else baseline, n_resamples,
            seed=int(cell["seed"]),
        )
        row = {
            **base, "arm": arm, "loss": loss, "n_test": len(labels),
            "floor_accuracy": floor_acc, "ceiling_accuracy": ceiling_acc,
            "weak_arm_accuracy": accuracy(labels, weak[arm]), "w2s_accuracy": w2s_acc,
            "floor_auroc": floor_auc, "ceiling_auroc": ceiling_auc,
            "weak_arm_auroc": auroc(labels, weak[arm]), "w2s_auroc": w2s_auc,
            "pgr_accuracy": pgr_acc, "pgr_auroc": pgr_auc,
            "pgr_undefined_reason": why_acc or "",
            "pgr_auroc_undefined_reason": why_auc or "",
        }
        for name in ("floor_accuracy", "ceiling_accuracy", "w2s_accuracy", "w2s_auroc",
                     "pgr_accuracy", "pgr_auroc"):
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = boot[name]
        row["pgr_accuracy_undefined_in_resamples"] = boot["pgr_accuracy_undefined_fraction"]
        if arm != "baseline" and baseline is not None:
            test = mcnemar(labels, student, baseline)
            row["vs_baseline_accuracy_diff"] = w2s_acc - accuracy(labels, baseline)
            low, high = boot["accuracy_minus_baseline"]
            row["vs_baseline_diff_ci_low"], row["vs_baseline_diff_ci_high"] = low, high
            row["vs_baseline_mcnemar_p"] = test["p_value"]
        regions = deception(labels, preds.floor, preds.ceiling, student)
        row["deception_score"] = regions["deception_score"]
        row["deception_gap"] = regions["deception_gap"]
        rows.append(row)
        deceptions.append({**base, "arm": arm, "loss": loss, **regions})
    return rows, deceptions


def analyze(cells: list[dict], outputs: dict[str, str], n_resamples: int = 1000) -> pd.DataFrame:
    """Analyse every cell and write the outputs named in ``outputs``."""
    from .plots import accuracy_ladder, debate_rounds, deception_plot, pgr_plot

    rows, deceptions = [], []
    for cell in cells:
        cell_rows, cell_deception = analyze_cell(cell, n_resamples)
        rows += cell_rows
        deceptions += cell_deception
    table = pd.DataFrame(rows)
    with atomic_path(outputs["csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_text(outputs["md"], markdown(table))
    write_text(outputs["html"], html_table(table))
    write_json(outputs["pgr"], pgr_report(table))
    write_json(outputs["deception"], deceptions)
    accuracy_ladder(table, outputs["ladder"])
    pgr_plot(table, outputs["pgr_plot"])
    deception_plot(deceptions, outputs["deception_plot"])
    if "debate_plot" in outputs:
        debate_rounds({(c["dataset"], str(c["seed"]), c["strong"]): c["debate_stats"]
                       for c in cells}, outputs["debate_plot"])
    log.info("study summary (test split):\n%s", markdown(table))
    return table


def pgr_report(table: pd.DataFrame) -> dict:
    """PGR per row, across seeds per (dataset, pair, arm, loss), and the median across cells."""
    def clean(value):
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value

    per_row = [
        {key: clean(row[key]) for key in (*CELL_KEYS, "arm", "loss", "pgr_accuracy",
                                          "pgr_accuracy_ci_low", "pgr_accuracy_ci_high",
                                          "pgr_auroc", "pgr_auroc_ci_low", "pgr_auroc_ci_high",
                                          "pgr_undefined_reason")}
        for row in table.to_dict("records")
    ]
    seeds = []
    for key, group in table.groupby(["dataset", "weak", "strong", "arm", "loss"], sort=False):
        seeds.append({
            **dict(zip(("dataset", "weak", "strong", "arm", "loss"), key)),
            "pgr_accuracy": across_seeds([clean(v) for v in group["pgr_accuracy"]]),
            "pgr_auroc": across_seeds([clean(v) for v in group["pgr_auroc"]]),
        })
    medians = []
    for (arm, loss), group in table.groupby(["arm", "loss"], sort=False):
        defined = [v for v in group["pgr_accuracy"] if clean(v) is not None]
        medians.append({
            "arm": arm, "loss": loss, "cells": len(group), "cells_excluded_undefined": len(group) - len(defined),
            "median_pgr_accuracy": float(np.median(defined)) if defined else None,
        })
    return {"rows": per_row, "across_seeds": seeds, "median_across_cells": medians,
            "definition": "PGR = (W2S - floor) / (ceiling - floor); undefined when ceiling <= floor"}


def html_table(table: pd.DataFrame) -> str:
    """The PGR table as a standalone HTML page (for the report)."""
    columns = ["dataset", "seed", "weak", "strong", "arm", "loss", "floor_accuracy",
               "w2s_accuracy", "ceiling_accuracy", "pgr_accuracy", "pgr_accuracy_ci_low",
               "pgr_accuracy_ci_high", "pgr_auroc", "pgr_undefined_reason",
               "vs_baseline_mcnemar_p", "deception_score", "deception_gap"]
    body = table.reindex(columns=columns).to_html(
        index=False, float_format=lambda v: f"{v:.3f}", na_rep="—", border=0, table_id="pgr-table"
    )
    style = ("body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
             "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>PGR table</title>"
            f"<style>{style}</style></head><body><h3>PGR per cell, arm and loss (test split)</h3>"
            f"{body}</body></html>\n")


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| dataset | seed | weak → strong | arm | loss | floor acc | W2S acc [95% CI] | ceiling acc | "
        "PGR (acc) [95% CI] | PGR (AUROC) | vs baseline: Δacc, McNemar p | deception score / gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        pgr_text = (f"{_fmt(r['pgr_accuracy'], 2)} [{_fmt(r['pgr_accuracy_ci_low'], 2)}, "
                    f"{_fmt(r['pgr_accuracy_ci_high'], 2)}]" if r["pgr_undefined_reason"] == ""
                    else f"undefined ({r['pgr_undefined_reason']})")
        versus = ("—" if r["arm"] == "baseline" or pd.isna(r.get("vs_baseline_mcnemar_p"))
                  else f"{r['vs_baseline_accuracy_diff']:+.3f}, p={r['vs_baseline_mcnemar_p']:.2f}")
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {r['weak']} → {r['strong']} | {r['arm']} | {r['loss']} | "
            f"{_fmt(r['floor_accuracy'])} | {_fmt(r['w2s_accuracy'])} [{_fmt(r['w2s_accuracy_ci_low'])}, "
            f"{_fmt(r['w2s_accuracy_ci_high'])}] | {_fmt(r['ceiling_accuracy'])} | {pgr_text} | "
            f"{_fmt(r['pgr_auroc'], 2)} | {versus} | {_fmt(r['deception_score'], 2)} / "
            f"{_fmt(r['deception_gap'], 2)} |"
        )
    return "\n".join(lines) + "\n"
