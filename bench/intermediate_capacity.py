"""Where does a deception study's intermediate model sit between its weak and strong models?

Yang et al. 2024's bootstrapping mitigation needs an intermediate whose capacity lies between the
weak supervisor and the strong student. With the packaged models, config/hh-deception.yaml takes
the strong model read at an earlier block. This script measures that choice with the pipeline's
own code on a finished study: it trains the intermediate on the gold labels of w2s_train (as the
strong ceiling is trained: align.train_strong, role `ceiling`, on the features the study cached
for the intermediate) and prints its test accuracy beside the study's weak floor and strong
ceiling, each with a 95 % bootstrap CI over the test items.

    .venv/bin/python bench/intermediate_capacity.py <study folder> [--config config/hh-deception.yaml]

Writes bench/records/hh_deception/intermediate_capacity.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from w2s_eda.align import train_strong  # noqa: E402
from w2s_eda.stats import accuracy, percentile_ci  # noqa: E402
from w2s_eda.study import Study, path, validate_config  # noqa: E402


def _ci(labels: np.ndarray, p_label1: np.ndarray, seed: int = 0, n: int = 1000) -> list:
    idx = np.random.default_rng(seed).integers(0, len(labels), (n, len(labels)))
    values = ((p_label1[idx] > 0.5) == labels[idx]).mean(axis=1)
    return [round(v, 4) for v in percentile_ci(values)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="the folder the study ran in (snakemake -d)")
    parser.add_argument("--config", default=str(REPO / "config/hh-deception.yaml"))
    parser.add_argument("--out", default=str(REPO / "bench/records/hh_deception/intermediate_capacity.json"))
    args = parser.parse_args()
    config = validate_config(yaml.safe_load(Path(args.config).read_text()))
    study = Study(config)
    records = []
    for cell in study.cells:
        if not cell.intermediate:
            continue
        w = cell.values()
        at = lambda name, **more: str(args.study / path(name, **{**w, **more}))  # noqa: E731
        splits = {"w2s_train": at("w2s_train"), "test": at("test")}
        train = study.intermediate_train(w)
        with tempfile.TemporaryDirectory() as folder:
            outputs = {"test": f"{folder}/test.parquet", "metrics": f"{folder}/metrics.json"}
            metrics = train_strong("ceiling", splits, str(args.study / study.model_dir(cell.intermediate)),
                                   train, "xent", cell.seed, config["device"], config["dtype"],
                                   outputs, features=at("intermediate_features"))
            middle = pd.read_parquet(outputs["test"])
        labels = middle["label"].to_numpy()
        floor = pd.read_parquet(at("weak_test_predictions_shared", arm="baseline"))
        ceiling = pd.read_parquet(at("ceiling_test_predictions"))
        assert list(floor["id"]) == list(middle["id"]) == list(ceiling["id"])
        row = {"dataset": cell.dataset, "seed": cell.seed, "weak": cell.weak,
               "intermediate": cell.intermediate, "intermediate_layer": train["layer"],
               "strong": cell.strong, "strong_layer": config["train"]["strong"]["layer"],
               "n_test": len(labels)}
        for name, p_label1 in (("weak_floor", floor["p_label1"]),
                               ("intermediate_ceiling", middle["p_label1"]),
                               ("strong_ceiling", ceiling["p_label1"])):
            p_label1 = p_label1.to_numpy()
            row[name] = {"accuracy": round(accuracy(labels, p_label1), 4),
                         "ci": _ci(labels, p_label1, cell.seed)}
        row["intermediate_ceiling"]["seconds"] = metrics["seconds"]
        records.append(row)
        print(f"{cell.dataset} seed {cell.seed}: weak floor {row['weak_floor']}, intermediate "
              f"({cell.intermediate} block {train['layer']}) on gold {row['intermediate_ceiling']}, "
              f"strong ceiling {row['strong_ceiling']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
