"""The headline figure (README, the report's first category): which summary.csv rows it draws,
and that it draws them from a study with several cells, settings and controls."""

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from w2s_eda.errors import StudyError
from w2s_eda.plots import headline, headline_rows, main
from w2s_eda.study import REPORTED, Study, validate_config

PNG = b"\x89PNG\r\n\x1a\n"


def _row(dataset, arm, loss, kind="arm", setting="none", pgr=0.5, n_test=100):
    return {"dataset": dataset, "seed": 0, "weak": "w", "strong": "s", "arm": arm, "kind": kind,
            "loss": loss, "setting": setting, "n_test": n_test,
            "floor_accuracy": 0.6, "floor_accuracy_ci_low": 0.55, "floor_accuracy_ci_high": 0.65,
            "ceiling_accuracy": 0.8, "ceiling_accuracy_ci_low": 0.75,
            "ceiling_accuracy_ci_high": 0.85, "w2s_accuracy": 0.7, "w2s_accuracy_ci_low": 0.66,
            "w2s_accuracy_ci_high": 0.74, "w2s_minus_floor": 0.1, "w2s_minus_floor_ci_low": 0.05,
            "w2s_minus_floor_ci_high": 0.15, "pgr_accuracy": pgr, "pgr_accuracy_ci_low": pgr - 0.2,
            "pgr_accuracy_ci_high": pgr + 0.2,
            "pgr_undefined_reason": "ceiling does not beat floor" if np.isnan(pgr) else ""}


@pytest.fixture
def summary():
    """A W2S cell (baseline alone, two losses, one conflict setting) beside an ablation cell
    (baseline, explain and a control), as in the default study."""
    return pd.DataFrame([
        _row("big", "baseline", "xent", n_test=1000),
        _row("big", "baseline", "logconf", n_test=1000, pgr=np.nan),
        _row("big", "baseline", "xent", setting="explicit", n_test=1000),
        _row("small", "baseline", "xent"),
        _row("small", "explain", "xent"),
        _row("small", "self_distill", "xent", kind="control"),
    ])


def test_it_draws_the_baseline_students_of_the_cells_that_train_the_baseline_alone(summary):
    rows = headline_rows(summary)
    assert list(zip(rows.dataset, rows.loss, rows.setting)) == [
        ("big", "xent", "none"), ("big", "logconf", "none")]


def test_without_a_baseline_only_cell_it_draws_every_cells_baseline_students(summary):
    ablation = summary[summary.dataset == "small"]
    other = ablation.assign(dataset="other")
    rows = headline_rows(pd.concat([ablation, other]))
    assert list(zip(rows.dataset, rows.arm, rows.kind)) == [
        ("small", "baseline", "arm"), ("other", "baseline", "arm")]


def test_it_writes_a_png_of_several_cells_and_returns_the_rows_drawn(summary, tmp_path):
    drawn = headline(summary, str(tmp_path / "plots/headline.png"))  # an undefined PGR too
    assert (tmp_path / "plots/headline.png").read_bytes()[:8] == PNG
    assert list(drawn.index) == [0, 1]


def test_a_summary_without_a_baseline_student_is_an_error_naming_it(summary, tmp_path):
    with pytest.raises(StudyError, match="no baseline-arm student"):
        headline(summary[summary.arm != "baseline"], str(tmp_path / "h.png"))
    assert not (tmp_path / "h.png").exists()


def test_make_figure_draws_the_default_study_record(tmp_path, capsys):
    record = REPO / "bench/records/default_winowhy/summary.csv"
    main([str(record), str(tmp_path / "headline.png")])
    assert (tmp_path / "headline.png").read_bytes()[:8] == PNG
    # the W2S cell's two students (600 / 600 / 1000), not the 96-item EDA cell's
    assert "2 baseline students" in capsys.readouterr().out
    rows = headline_rows(pd.read_csv(record))
    assert set(rows.dataset) == {"winowhy"} and list(rows.loss) == ["xent", "logconf"]


def test_the_report_lists_the_headline_first_with_its_caption():
    # snakemake --report's menu sorts categories by name (its menu.js: localeCompare)
    categories = sorted({category for _, category, _ in REPORTED.values()})
    assert categories[0] == REPORTED["headline"][1] == "0. Headline"
    for caption, _, _ in REPORTED.values():
        assert (REPO / "workflow/report" / caption).is_file(), caption
    outputs = Study(validate_config({})).analysis_outputs()
    assert outputs["headline"] == "results/plots/headline.png"
    assert set(REPORTED) - {"debate_plot", "deception_settings_plot"} <= set(outputs)
