"""The plots a bench script draws over many cells' summary.csv rows: PGR against misfit, PGR per
task and rung (Burns et al. 2023, Fig. 3), the Deception Score against the capacity gap."""

import numpy as np
import pandas as pd
import pytest

from w2s_eda.plots import deception_vs_gap, pgr_per_task, pgr_vs_misfit

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def frame():
    """Two tasks × two rungs × two seeds; one PGR and one DS undefined (NaN)."""
    rows = []
    for k, (dataset, weak, strong, seed) in enumerate(
            (d, w, s, seed) for d in ("sciq", "boolq") for w, s in (("a", "b"), ("a", "c"))
            for seed in (0, 1)):
        pgr = np.nan if k == 3 else 0.1 * k
        ds = np.nan if k == 5 else 0.05 * k
        rows.append({"dataset": dataset, "seed": seed, "weak": weak, "strong": strong,
                     "pgr_accuracy": pgr, "pgr_accuracy_ci_low": pgr - 0.1,
                     "pgr_accuracy_ci_high": pgr + 0.2, "misfit": 0.01 * k,
                     "ds": ds, "ds_ci_low": ds - 0.02, "ds_ci_high": ds + 0.03,
                     "floor_accuracy": 0.6, "ceiling_accuracy": 0.7 + 0.02 * k})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("plot", [pgr_vs_misfit, pgr_per_task, deception_vs_gap])
def test_each_plot_writes_a_png(plot, frame, tmp_path):
    plot(frame, str(tmp_path / "plot.png"))
    assert (tmp_path / "plot.png").read_bytes()[:8] == PNG


def test_the_plots_take_frames_without_cis_tasks_or_misfits(frame, tmp_path):
    cis = [c for c in frame if c.endswith(("_ci_low", "_ci_high"))]
    bare = frame.drop(columns=[*cis, "dataset"])
    pgr_vs_misfit(bare.assign(misfit=np.nan), str(tmp_path / "a.png"))  # no misfit anywhere
    pgr_per_task(bare, str(tmp_path / "b.png"))
    deception_vs_gap(bare.assign(size=range(len(bare))), str(tmp_path / "c.png"), x="size")
    assert all((tmp_path / name).read_bytes()[:8] == PNG for name in ("a.png", "b.png", "c.png"))
