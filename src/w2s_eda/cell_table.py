"""The per-cell table: one cell's floor, ceiling and W2S scores (no torch: the analysis env)."""

from __future__ import annotations

import logging

from .io import read_json, write_json, write_text
from .stats import fmt

log = logging.getLogger(__name__)


def summarize_cell(
    weak: dict[str, str], students: dict[str, dict[str, str]], ceiling: str, output_json: str,
    output_md: str,
) -> dict:
    """Floor, W2S and ceiling accuracy and AUROC on test, one row per arm and loss.

    ``weak`` maps each arm to its weak model's metrics file, ``students`` each arm and loss to
    its student's; the weak floor is the ``baseline`` arm.
    """
    ceiling_metrics = read_json(ceiling)
    weak_metrics = {arm: read_json(path) for arm, path in weak.items()}
    floor = weak_metrics["baseline"]["test"]
    rows = []
    for arm, by_loss in students.items():
        for loss, path in by_loss.items():
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
