"""Scores and the per-cell results table. No torch here: the analysis env imports it."""

from __future__ import annotations

import logging

import numpy as np

from .analysis import accuracy, auroc
from .io import read_json, write_json, write_text

log = logging.getLogger(__name__)


def scores(labels: np.ndarray, p_label1: np.ndarray) -> dict:
    labels = np.asarray(labels)
    return {"accuracy": accuracy(labels, p_label1), "auroc": auroc(labels, p_label1),
            "n": int(len(labels))}


def fmt(value, digits: int = 3, missing: str = "n/a") -> str:
    """A number for a table; ``missing`` for None or NaN."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return missing
    return f"{value:.{digits}f}"


def summarize_cell(
    weak: dict[str, str], students: dict[str, str], ceiling: str, output_json: str,
    output_md: str,
) -> dict:
    """Floor, W2S and ceiling accuracy and AUROC on test, one row per arm and loss."""
    ceiling_metrics = read_json(ceiling)
    weak_metrics = {arm: read_json(path) for arm, path in weak.items()}
    floor = weak_metrics["baseline"]["test"]
    rows = []
    for key, path in students.items():
        arm, loss = key.split("/")
        student = read_json(path)
        rows.append({
            "arm": arm, "loss": loss,
            "weak_accuracy": weak_metrics[arm]["test"]["accuracy"],
            "weak_auroc": weak_metrics[arm]["test"]["auroc"],
            "weak_label_accuracy": weak_metrics[arm]["w2s_train_label_accuracy"]["accuracy"],
            "w2s_accuracy": student["test"]["accuracy"], "w2s_auroc": student["test"]["auroc"],
        })
    summary = {
        "floor": floor, "ceiling": ceiling_metrics["test"],
        "ceiling_minus_floor_accuracy": ceiling_metrics["test"]["accuracy"] - floor["accuracy"],
        "rows": rows,
    }
    write_json(output_json, summary)
    lines = [
        f"weak floor (baseline arm): accuracy {floor['accuracy']:.3f}, AUROC {fmt(floor['auroc'])}",
        f"strong ceiling: accuracy {ceiling_metrics['test']['accuracy']:.3f}, "
        f"AUROC {fmt(ceiling_metrics['test']['auroc'])}",
        "",
        "| arm | loss | weak acc | weak AUROC | weak-label acc (w2s_train) | W2S acc | W2S AUROC |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['arm']} | {r['loss']} | {r['weak_accuracy']:.3f} | {fmt(r['weak_auroc'])} | "
            f"{r['weak_label_accuracy']:.3f} | {r['w2s_accuracy']:.3f} | {fmt(r['w2s_auroc'])} |"
            for r in rows
        ),
    ]
    write_text(output_md, "\n".join(lines) + "\n")
    log.info("test results (n=%d):\n%s", floor["n"], "\n".join(lines))
    return summary
