"""The analysis stage's outputs, the HTML report (rendered in headless Chromium) and W&B runs,
read from the shared tiny study (conftest.tiny_study: every stage, W&B offline)."""

import base64
import html
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import REPO, TINY_ARMS as ARMS, run_snakemake, study_args
from w2s_eda.tracking import artifact_name, offline_runs

LOSSES = ("xent", "logconf")


@pytest.mark.slow
def test_analysis_writes_every_table_and_plot(tiny_study):
    folder, result, _ = tiny_study
    assert result.returncode == 0, result.stderr[-3000:]
    everything = pd.read_csv(folder / "results/summary.csv")
    summary = everything[everything.kind == "arm"]  # the controls: tests/test_debate_science.py
    assert len(summary) == len(ARMS) * len(LOSSES)
    assert set(zip(summary.arm, summary.loss)) == {(a, l) for a in ARMS for l in LOSSES}
    for column in ("floor_accuracy", "ceiling_accuracy", "w2s_accuracy", "w2s_auroc", "pgr_accuracy",
                   "pgr_accuracy_ci_low", "pgr_auroc", "deception_score", "deception_gap"):
        assert column in summary.columns
    # PGR is either a number or undefined with its reason, never both.
    for row in summary.itertuples():
        assert pd.isna(row.pgr_accuracy) == (isinstance(row.pgr_undefined_reason, str))
    baseline = summary[summary.arm == "baseline"]
    assert baseline.vs_baseline_mcnemar_p.isna().all()
    assert summary[summary.arm != "baseline"].vs_baseline_mcnemar_p.between(0, 1).all()
    pgr = json.loads((folder / "results/pgr.json").read_text())
    assert {(m["arm"], m["loss"]) for m in pgr["median_across_cells"]} == set(
        zip(everything.arm, everything.loss))
    deception = json.loads((folder / "results/deception.json").read_text())
    assert sum(r["n"] for r in deception[0]["regions"].values()) == 4
    for plot in ("accuracy_ladder", "pgr", "deception", "debate_rounds", "headline"):
        assert (folder / f"results/plots/{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (folder / "results/summary.md").read_text()
    log = (folder / "results/logs/analysis/study.log").read_text()
    assert md.splitlines()[2] in log  # the table is printed in the log


def _shown_in_chromium(report, category, label, tmp_path) -> str:
    page = report.read_text()
    driver = (REPO / "tests/report/driver.html").read_text()
    driver = driver.replace("__CATEGORY__", category).replace("__LABEL__", label)
    driven = tmp_path / f"driven-{label.replace(' ', '_')}.html"
    end = page.rfind("</body>")
    driven.write_text(page[:end] + driver + page[end:])
    result = subprocess.run(
        [shutil.which("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=8000", "--dump-dom", driven.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    shown = re.findall(r'<pre id="w2s-shown">(.*?)</pre>', result.stdout, re.S)
    assert shown, result.stderr[-2000:]
    return html.unescape(shown[-1])


@pytest.mark.slow
def test_report_opens_with_the_headline_and_shows_the_pgr_figure_and_table(tiny_study, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (make test installs it with apt-get)")
    folder, _, config = tiny_study
    report = folder / "results/report.html"
    result = run_snakemake("--report", str(report), *study_args(folder, config))
    assert result.returncode == 0, result.stderr[-3000:]
    # The report opens with the README's figure: the first category, linked from the description.
    page = report.read_text()
    description = json.loads(re.search(r"var workflow_desc = (.*?);\n", page).group(1))
    assert "showResultInfo" in description and ">headline.png</a>" in description
    assert 'href="../docs/studies.md"' in description
    headline = _shown_in_chromium(report, "0. Headline", "W2S gain and PGR (baseline students)",
                                  tmp_path)
    assert headline.startswith("data:image/png") and "filename=headline.png" in headline
    png = base64.b64decode(headline.split("base64,", 1)[1])
    assert png == (folder / "results/plots/headline.png").read_bytes()
    figure = _shown_in_chromium(report, "2. Plots", "PGR per arm", tmp_path)
    assert figure.startswith("data:image/png") and "filename=pgr.png" in figure
    png = base64.b64decode(figure.split("base64,", 1)[1])
    assert png == (folder / "results/plots/pgr.png").read_bytes()
    table = _shown_in_chromium(report, "1. Results", "PGR table", tmp_path)
    assert table.startswith("data:text/html") and "filename=pgr_table.html" in table
    shown = base64.b64decode(table.split("base64,", 1)[1]).decode()
    assert 'id="pgr-table"' in shown and "debate_distill" in shown and "pgr_accuracy" in shown


@pytest.mark.slow
def test_every_job_left_an_offline_wandb_run_with_its_group_and_job_type(tiny_study):
    folder, result, _ = tiny_study
    log = result.stdout + result.stderr
    # prep jobs print their message (the data source) instead of the rule block
    jobs = re.findall(r"^(?:local)?rule (\w+):", log, re.M) + re.findall(r"^Job \d+: (prep) ", log, re.M)
    runs = offline_runs(folder / "results/wandb")
    assert sorted(run["job_type"] for run in runs) == sorted(job for job in jobs if job != "all")
    for run in runs:
        assert run["exit_code"] == 0
        wildcards = run["config"]["wildcards"]
        if "dataset" in wildcards:
            assert run["group"].startswith(f"{wildcards['dataset']}/seed{wildcards['seed']}")
        if "weak" in wildcards:  # the baseline's weak model is shared by strong models
            strong = f"/{wildcards['strong']}" if "strong" in wildcards else ""
            assert run["group"] == f"toy/seed0/{wildcards['weak']}{strong}"
        assert run["name"] == "_".join(wildcards.values()) or run["name"] == run["job_type"]
        assert run["artifacts"], run  # every job logs its outputs
    student = next(r for r in runs if r["job_type"] == "train_student")
    soft_labels = next(a for a in student["config"]["used_artifacts"] if a.endswith("soft_labels.parquet"))
    producer = next(r for r in runs if r["job_type"] in ("train_weak", "train_weak_strong")
                    and soft_labels in {a["name"] for a in r["artifacts"]})
    assert {"type": "weak_labels", "name": soft_labels} in producer["artifacts"]
    assert "WANDB_API_KEY" not in json.dumps(runs)
    summary_artifact = artifact_name("results/summary.csv")
    assert any(a["name"] == summary_artifact for r in runs for a in r["artifacts"])
