"""Where does weak-to-strong generalisation show? The study itself over tasks, capacities and
student recipes.

Runs the workflow (Snakemake, the real rules) with the baseline arm only, so no text is generated,
over every registered offline task, a capacity ladder of (weak, strong) rungs (one set of weights
read at several blocks: `models.<name>.layer`) and several seeds, probe mode, xent and logconf
students. Each probe recipe (how the heads of the weak floor, the ceiling and the students are
trained: the same recipe for all three, so PGR compares like with like) is one run in the same
work folder: the feature files do not depend on it, so only the training jobs run again.

For every (recipe, task, rung, seed, loss) the record holds summary.csv's own figures (floor,
ceiling, W2S, PGR with CIs and the share of resamples where it is undefined, W2S − floor with its
paired-bootstrap CI and McNemar p, the Deception Score, misfit, weak–strong error agreement), and
for every (recipe, task, rung, loss) the same pooled over seeds: the mean over seeds of W2S − floor
and PGR = mean gain / mean gap, with a 95 % CI from resampling test items within each seed.

    .venv/bin/python bench/w2s_landscape.py --recipes adamw lbfgs-cv --tasks winowhy --ladder default
    .venv/bin/python bench/w2s_landscape.py                    # the whole landscape

Writes bench/records/w2s_landscape/{cells.csv,pooled.csv,landscape.md} and its figures (committed);
work folders go under --workdir (kept, so a rerun reuses finished jobs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from w2s_eda.data.registry import DATASETS  # noqa: E402
from w2s_eda.stats import accuracy_rows  # noqa: E402
from w2s_eda.study import path  # noqa: E402
from w2s_power import run_study  # noqa: E402

# The probe recipes compared: the minibatch head the study trained so far, and the exact fit.
RECIPES = {
    # 40 epochs of AdamW, lr 1e-3, weight decay 0.01, no early stopping (the schema's defaults)
    "adamw": {},
    # L-BFGS with the penalty chosen by 5-fold CV on the training targets (EleutherAI/w2s fit_cv)
    "lbfgs-cv": {"optimizer": "lbfgs", "l2_penalty": "cv"},
    # L-BFGS at EleutherAI/w2s's default penalty (LogisticProbeConfig.l2p = 1e-3)
    "lbfgs-1e-3": {"optimizer": "lbfgs", "l2_penalty": 0.001},
    # L-BFGS at two stronger fixed penalties: 0.33 is sklearn's C = 0.01 (the probe
    # simulation) at 300 training items (our head's penalty = 1 / (C n), tests/test_probe_solver.py)
    "lbfgs-0.03": {"optimizer": "lbfgs", "l2_penalty": 0.033},
    "lbfgs-0.33": {"optimizer": "lbfgs", "l2_penalty": 0.33},
}
WEAK = {"minilm-b1": 1, "minilm-b2": 2, "minilm-l6": "last"}  # MiniLM-L6 has 6 blocks
STRONG = {"smollm2-b8": 8, "smollm2-135m": "middle", "smollm2-b22": 22, "smollm2-last": "last"}
LADDERS = {
    "default": (["minilm-l6"], ["smollm2-135m"]),
    "full": (list(WEAK), list(STRONG)),
}
# The blocks of each rung, for the tables (middle of SmolLM2-135M's 30 blocks is 15).
BLOCK = {**{k: (6 if v == "last" else v) for k, v in WEAK.items()},
         **{k: {"middle": 15, "last": "30+norm"}.get(v, v) for k, v in STRONG.items()}}
OFFLINE_TASKS = tuple(sorted(name for name, entry in DATASETS.items() if entry.bigbench_task))


def models(ladder: str) -> dict:
    weak, strong = LADDERS[ladder]
    out = {}
    for name in strong:
        out[name] = {"packaged": "smollm2-135m-instruct"}
        if name != "smollm2-135m":
            out[name]["layer"] = STRONG[name]
    for name in weak:
        out[name] = {"packaged": "all-minilm-l6-v2"}
        if name != "minilm-l6":
            out[name]["layer"] = WEAK[name]
    return out


def study_config(tasks, size: int, seeds, ladder: str, recipe: dict) -> dict:
    weak, strong = LADDERS[ladder]
    train = {"mode": "probe", **recipe}
    return {
        "seeds": list(seeds), "offline": True,
        "splits": {"weak_train": size, "w2s_train": size, "test": size},
        "datasets": {task: {"splits": split_sizes(task, size)} for task in tasks},
        "models": models(ladder),
        "pairs": [{"weak": w, "strong": s} for w in weak for s in strong],
        "align": {"arms": ["baseline"], "controls": []},
        "train": {"weak": dict(train), "strong": dict(train)},
        "wandb": {"mode": "disabled"},
    }


def split_sizes(task: str, size: int) -> dict:
    """``size`` items per split, or as many as the task's balanced pool allows: three splits of
    half each label need 1.5 x size items of the smaller label (a few are lost to repeated and
    conflicting texts, so 2 % is kept back)."""
    from w2s_eda.data.bigbench import obtain_task
    from w2s_eda.prep import load_pools

    file = REPO / path("bigbench", bigbench_task=task)
    if not file.is_file():  # a fresh clone: the workflow has not copied the shipped file yet
        obtain_task(task, DATASETS[task].bigbench_task, file, REPO / "data/bigbench")
    train, _ = load_pools(task, {}, seed=0, bigbench_file=str(file))
    labels = np.array([item.label for item in train])
    smaller = min((labels == 0).sum(), (labels == 1).sum())
    per_split = min(size, int(0.98 * smaller / 1.5) // 2 * 2)
    return {"weak_train": per_split, "w2s_train": per_split, "test": per_split}


def _predictions(workdir: Path, name: str, **values) -> pd.DataFrame:
    return pd.read_parquet(workdir / path(name, **values)).sort_values("id")


def collect(workdir: Path, recipe: str, seconds: float) -> pd.DataFrame:
    summary = pd.read_csv(workdir / "results/summary.csv")
    rows = summary[summary["kind"] == "arm"].copy()
    rows.insert(0, "recipe", recipe)
    rows.insert(1, "task", rows.pop("dataset"))
    rows["weak_block"] = rows["weak"].map(BLOCK)
    rows["strong_block"] = rows["strong"].map(BLOCK)
    rows["gap"] = rows["ceiling_accuracy"] - rows["floor_accuracy"]
    rows["study_seconds"] = round(seconds, 1)
    return rows


def pooled(workdir: Path, cells: pd.DataFrame, n_resamples: int = 1000) -> pd.DataFrame:
    """Per (recipe, task, rung, loss): the mean over seeds of W2S − floor and PGR (mean gain /
    mean gap), each with a 95 % CI from resampling every seed's test items."""
    out = []
    keys = ["recipe", "task", "weak", "strong", "loss"]
    for key, group in cells.groupby(keys, sort=False):
        rng = np.random.default_rng(0)
        gains, gaps, point_gain, point_gap = [], [], [], []
        for _, row in group.iterrows():
            values = dict(dataset=row["task"], seed=int(row["seed"]), weak=row["weak"],
                          strong=row["strong"])
            floor = _predictions(workdir / row["recipe"], "weak_test_predictions_shared",
                                 arm="baseline", **values)
            ceiling = _predictions(workdir / row["recipe"], "ceiling_test_predictions", **values)
            w2s = _predictions(workdir / row["recipe"], "student_test_predictions", arm="baseline",
                               loss=row["loss"], **values)
            labels = floor["label"].to_numpy()
            idx = rng.integers(0, len(labels), (n_resamples, len(labels)))
            acc = {name: accuracy_rows(labels[idx], frame["p_label1"].to_numpy()[idx])
                   for name, frame in (("floor", floor), ("ceiling", ceiling), ("w2s", w2s))}
            gains.append(acc["w2s"] - acc["floor"])
            gaps.append(acc["ceiling"] - acc["floor"])
            point_gain.append(row["w2s_accuracy"] - row["floor_accuracy"])
            point_gap.append(row["gap"])
        gain, gap = np.mean(gains, axis=0), np.mean(gaps, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            pgr = np.where(gap > 0, gain / gap, np.nan)
        mean_gain, mean_gap = float(np.mean(point_gain)), float(np.mean(point_gap))
        out.append({
            **dict(zip(keys, key)), "seeds": len(group),
            "n_test": int(group["n_test"].iloc[0]),
            "weak_block": group["weak_block"].iloc[0], "strong_block": group["strong_block"].iloc[0],
            "floor": group["floor_accuracy"].mean(), "ceiling": group["ceiling_accuracy"].mean(),
            "w2s": group["w2s_accuracy"].mean(), "gap": mean_gap,
            "w2s_minus_floor": mean_gain,
            "w2s_minus_floor_ci_low": float(np.percentile(gain, 2.5)),
            "w2s_minus_floor_ci_high": float(np.percentile(gain, 97.5)),
            "seeds_gain_positive": int(sum(g > 0 for g in point_gain)),
            "pgr": mean_gain / mean_gap if mean_gap > 0 else float("nan"),
            "pgr_ci_low": float(np.nanpercentile(pgr, 2.5)) if np.isfinite(pgr).any() else np.nan,
            "pgr_ci_high": float(np.nanpercentile(pgr, 97.5)) if np.isfinite(pgr).any() else np.nan,
            "pgr_undefined_in_resamples": float(np.mean(~np.isfinite(pgr))),
            **{column: group[column].mean() for column in OPTIONAL if column in group},
        })
    return pd.DataFrame(out)


# Per-cell diagnostics averaged over seeds when summary.csv has them.
OPTIONAL = ("ds", "misfit", "misfit_hard", "error_overlap", "error_agreement_kappa")


def _f(value, digits=3) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def correlations(cells: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    """Spearman's rank correlation, per recipe and loss, of the Deception Score with the capacity
    gap (Yang et al. 2024: DS grows with it) over the pooled rungs and over the seed cells, and of
    PGR with misfit (Charikar et al. 2024) over the pooled rungs whose PGR is defined."""
    from scipy.stats import spearmanr

    lines = []
    for (recipe, loss), rungs in frame.groupby(["recipe", "loss"], sort=False):
        seeds = cells[(cells["recipe"] == recipe) & (cells["loss"] == loss)]
        defined = rungs.dropna(subset=["pgr", "misfit"])
        if len(rungs) < 3 or "ds" not in rungs:
            continue
        pairs = [("DS vs gap, pooled rungs", rungs["gap"], rungs["ds"]),
                 ("DS vs gap, seed cells", seeds["gap"], seeds["ds"]),
                 ("PGR vs misfit, pooled rungs", defined["misfit"], defined["pgr"])]
        stats = [f"{name}: rho {spearmanr(x, y).statistic:+.2f} (p {spearmanr(x, y).pvalue:.3f}, "
                 f"n {len(x)})" for name, x, y in pairs if len(x) >= 3]
        lines.append(f"- {recipe}, {loss}: " + "; ".join(stats))
    return ["Spearman correlations over the cells:", "", *lines, ""] if lines else []


def markdown(frame: pd.DataFrame, seconds: dict[str, float], cells: pd.DataFrame) -> str:
    lines = [
        f"# The W2S landscape (bench/w2s_landscape.py, {os.cpu_count()} CPUs)", "",
        "Pooled over seeds. W2S − floor and PGR: 95 % CIs from resampling each seed's test items; "
        "**bold** where the CI of W2S − floor is above 0. Blocks: MiniLM-L6 has 6, SmolLM2-135M 30 "
        "(`30+norm`: the last hidden state, after the final norm).", "",
        "| recipe | task | weak (block) | strong (block) | loss | n/split | seeds | floor | ceiling "
        "| W2S | W2S − floor [95% CI] | seeds > 0 | PGR [95% CI] | PGR undefined | DS | misfit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in frame.iterrows():
        gain = (f"{r.w2s_minus_floor * 100:+.1f} [{r.w2s_minus_floor_ci_low * 100:+.1f}, "
                f"{r.w2s_minus_floor_ci_high * 100:+.1f}]")
        if r.w2s_minus_floor_ci_low > 0:
            gain = f"**{gain}**"
        lines.append(
            f"| {r.recipe} | {r.task} | {r.weak} ({r.weak_block}) | {r.strong} ({r.strong_block}) | "
            f"{r.loss} | {r.n_test} | {r.seeds} | {_f(r.floor)} | {_f(r.ceiling)} | {_f(r.w2s)} | "
            f"{gain} | {r.seeds_gain_positive}/{r.seeds} | {_f(r.pgr, 2)} [{_f(r.pgr_ci_low, 2)}, "
            f"{_f(r.pgr_ci_high, 2)}] | {r.pgr_undefined_in_resamples:.0%} | "
            f"{_f(r.get('ds'), 2)} | {_f(r.get('misfit'), 3)} |")
    lines += ["", *correlations(cells, frame),
              "Study time per recipe (all cells together, from an empty or feature-holding "
              "work folder): " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(OFFLINE_TASKS))
    parser.add_argument("--size", type=int, default=300, help="items per split (capped by the pool)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ladder", choices=sorted(LADDERS), default="full")
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=["lbfgs-cv"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/w2s-landscape"))
    parser.add_argument("--out", type=Path, default=REPO / "bench/records/w2s_landscape")
    parser.add_argument("--max-threads", type=int, default=None)
    parser.add_argument("--figures-only", action="store_true",
                        help="rewrite landscape.md and redraw the figures from --out's cells.csv "
                        "and pooled.csv")
    args = parser.parse_args()
    if args.figures_only:
        cells, table = pd.read_csv(args.out / "cells.csv"), pd.read_csv(args.out / "pooled.csv")
        seconds = cells.groupby("recipe", sort=False)["study_seconds"].first().to_dict()
        (args.out / "landscape.md").write_text(markdown(table, seconds, cells))
        figures(cells, table, args.out, args.recipes[0])
        return

    frames, seconds = [], {}
    shared = args.workdir / "shared"
    for recipe in args.recipes:
        # one work folder; each recipe's results are copied aside, the features stay for the next
        config = study_config(args.tasks, args.size, args.seeds, args.ladder, RECIPES[recipe])
        seconds[recipe] = run_study(shared, config, args.max_threads)
        print(f"{recipe}: study finished in {seconds[recipe]:.0f} s", flush=True)
        snapshot = args.workdir / recipe
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(shared / "results", snapshot / "results")
        frames.append(collect(shared, recipe, seconds[recipe]))
    cells = pd.concat(frames, ignore_index=True)
    table = pooled(args.workdir, cells)
    args.out.mkdir(parents=True, exist_ok=True)
    cells.to_csv(args.out / "cells.csv", index=False)
    table.to_csv(args.out / "pooled.csv", index=False)
    text = markdown(table, seconds, cells)
    (args.out / "landscape.md").write_text(text)
    print(text)
    figures(cells, table, args.out, args.recipes[0])


def figures(cells: pd.DataFrame, pooled_table: pd.DataFrame, out: Path, recipe: str) -> None:
    """For one recipe: PGR per task for each rung and loss (Burns et al. 2023 Fig. 3), PGR
    against misfit (Charikar et al. 2024), the Deception Score against the capacity gap (Yang et
    al. 2024)."""
    from w2s_eda import plots

    rows = cells[cells["recipe"] == recipe].rename(columns={"task": "dataset"})
    # one point per (task, rung): the PGR pooled over seeds with its CI
    table = pooled_table[pooled_table["recipe"] == recipe].rename(columns={
        "task": "dataset", "pgr": "pgr_accuracy", "pgr_ci_low": "pgr_accuracy_ci_low",
        "pgr_ci_high": "pgr_accuracy_ci_high"})
    for loss in dict.fromkeys(table["loss"]):
        plots.pgr_per_task(table[table["loss"] == loss], out / f"pgr_per_task_{loss}.png")
    plots.pgr_vs_misfit(rows, out / "pgr_vs_misfit.png")
    plots.deception_vs_gap(rows, out / "deception_vs_gap.png")
    if table["weak"].nunique() > 1 or table["strong"].nunique() > 1:
        for task in dict.fromkeys(table["dataset"]):
            ladder_grid(table[table["dataset"] == task], out / f"ladder_{task}.png")


def ladder_grid(table: pd.DataFrame, path: Path) -> None:
    """One task's capacity ladder as a grid per loss: weak rung x strong rung, each cell W2S −
    floor pooled over seeds (colour, points) with its 95 % CI and PGR; a frame marks the cells
    whose CI is above 0."""
    from w2s_eda import plots

    losses = list(dict.fromkeys(table["loss"]))
    weak, strong = list(dict.fromkeys(table["weak"])), list(dict.fromkeys(table["strong"]))
    plt, fig, axes = plots._figure(4.6 * len(losses) + 1, 1.6 + 1.0 * len(weak),
                                   columns=len(losses), squeeze=False)
    for ax, loss in zip(axes[0], losses):
        rows = table[table["loss"] == loss].set_index(["weak", "strong"])
        grid = np.array([[rows.loc[(w, s), "w2s_minus_floor"] * 100 for s in strong] for w in weak])
        ax.imshow(grid, cmap="RdBu", vmin=-8, vmax=8)  # every cell carries its value
        for i, w in enumerate(weak):
            for j, s in enumerate(strong):
                r = rows.loc[(w, s)]
                low, high = r.w2s_minus_floor_ci_low * 100, r.w2s_minus_floor_ci_high * 100
                ci = f"[{low:+.1f}, {high:+.1f}]"
                ax.text(j, i, f"{r.w2s_minus_floor * 100:+.1f}\n{ci}\nPGR {_f(r.pgr_accuracy, 2)}",
                        ha="center", va="center", fontsize=7)
                if r.w2s_minus_floor_ci_low > 0:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, linewidth=2))
        ax.set_xticks(range(len(strong)), [f"block {BLOCK.get(s, '?')}" for s in strong],
                      fontsize=7)
        ax.set_xlabel("strong: SmolLM2-135M read at", fontsize=8)
        ax.set_yticks(range(len(weak)), [f"block {BLOCK.get(w, '?')}" for w in weak]
                      if ax is axes[0][0] else [], fontsize=7)
        if ax is axes[0][0]:
            ax.set_ylabel("weak: MiniLM-L6 read at", fontsize=8)
        ax.set_title(f"{loss}: W2S − floor, points [95% CI]", fontsize=9)
    fig.suptitle(f"{table['dataset'].iloc[0]}: capacity ladder (framed: CI above 0)", fontsize=10)
    plots._save(plt, fig, path)


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"total {time.monotonic() - started:.0f} s")
