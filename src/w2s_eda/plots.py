"""The study's plots (PNG, matplotlib's Agg backend): what a researcher looks at first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .arms import VIA
from .io import atomic_path, read_json


def _figure(width=8.0, height=4.5, columns=1, rows=1, **subplots):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(rows, columns, figsize=(width, height), dpi=110, **subplots)


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _cell_label(row) -> str:
    return f"{row['dataset']} s{row['seed']} {row['weak']}→{row['strong']}"


CELL_COLUMNS = ["dataset", "seed", "weak", "strong"]
NO_SETTING = "none"


def _setting(row) -> str:
    """The row's training setting; "none" for tables or entries without one."""
    value = row.get("setting", NO_SETTING)
    return NO_SETTING if value is None or pd.isna(value) else str(value)


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a ``shown`` column: the arm, with its setting when that is not "none"."""
    settings = [_setting(row) for _, row in table.iterrows()]
    return table.assign(shown=[arm if setting == NO_SETTING else f"{arm} [{setting}]"
                               for arm, setting in zip(table["arm"], settings)])


def _patches(names) -> list:
    """Legend handles: one colour patch per name, C0, C1, ... as the bars are coloured."""
    from matplotlib.patches import Patch

    return [Patch(color=f"C{k % 10}", alpha=0.6, label=str(name)) for k, name in enumerate(names)]


def _err(row, name):
    value, low, high = row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"]
    if any(pd.isna(v) for v in (value, low, high)):
        return [[0], [0]]
    return [[max(value - low, 0)], [max(high - value, 0)]]


def accuracy_ladder(table: pd.DataFrame, path: str) -> None:
    """Per cell: floor, each arm's W2S student (per loss), ceiling; test accuracy with 95 % CIs."""
    n_points = len(table) + 3 * table.groupby(CELL_COLUMNS).ngroups
    plt, fig, ax = _figure(9, 1.5 + 0.28 * n_points)
    y, ticks, labels = 0, [], []
    for _, cell in table.groupby(CELL_COLUMNS, sort=False):
        first = cell.iloc[0]
        entries = [("floor (weak baseline)", first, "floor_accuracy", "tab:gray")]
        entries += [(f"W2S {r['shown']} / {r['loss']}", r, "w2s_accuracy", "tab:blue")
                    for _, r in _shown(cell).iterrows()]
        entries += [("ceiling (strong, gold)", first, "ceiling_accuracy", "tab:green")]
        for text, row, name, color in entries:
            ax.errorbar(row[name], y, xerr=_err(row, name), fmt="o", color=color, capsize=3)
            ticks.append(y)
            labels.append(f"{_cell_label(first)}: {text}" if text.startswith("floor") else text)
            y -= 1
        y -= 1
    ax.axvline(0.5, color="lightgray", linestyle=":", zorder=0)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xlabel("test accuracy (95% paired-bootstrap CI)")
    ax.set_title("Accuracy ladder: weak floor → W2S students → strong ceiling")
    _save(plt, fig, path)


def pgr_plot(table: pd.DataFrame, path: str) -> None:
    """PGR on accuracy per arm and loss, with 95 % CIs; undefined PGRs are marked, not drawn."""
    plt, fig, ax = _figure(9, 4.5)
    table = _shown(table)
    losses = list(dict.fromkeys(table["loss"]))
    arms = list(dict.fromkeys(table["shown"]))
    width = 0.8 / max(1, len(losses))
    for j, loss in enumerate(losses):
        for i, arm in enumerate(arms):
            rows = table[(table["shown"] == arm) & (table["loss"] == loss)]
            x = i + (j - (len(losses) - 1) / 2) * width
            for _, row in rows.iterrows():
                if pd.isna(row["pgr_accuracy"]):
                    ax.annotate("undefined", (x, 0), ha="center", fontsize=7, rotation=90, color="tab:red")
                    continue
                ax.bar(x, row["pgr_accuracy"], width * 0.9, color=f"C{j}", alpha=0.35)
                ax.errorbar(x, row["pgr_accuracy"], yerr=_err(row, "pgr_accuracy"), fmt="o", color=f"C{j}", capsize=3)
    handles = _patches(losses)
    ax.axhline(0, color="black", linewidth=0.8)
    handles.append(ax.axhline(1, color="tab:green", linestyle="--", linewidth=0.8, label="ceiling (PGR 1)"))
    ax.set_xticks(range(len(arms)), arms)
    ax.set_ylabel("PGR on accuracy (95% CI)")
    ax.set_title("Performance gap recovered per arm: (W2S − floor) / (ceiling − floor)")
    ax.legend(handles=handles, fontsize=8)
    _save(plt, fig, path)


def deception_plot(deceptions: list[dict], path: str) -> None:
    """The student's error rate in the four weak/strong known/unknown regions, per arm and loss."""
    plt, fig, ax = _figure(9, 4.5)
    regions = ["weak_known_strong_known", "weak_known_strong_unknown",
               "weak_unknown_strong_known", "weak_unknown_strong_unknown"]
    names = ["WK∩SK", "WK∩SU", "WU∩SK (deception)", "WU∩SU"]
    several_seeds = len({x["seed"] for x in deceptions}) > 1
    several_settings = len({_setting(x) for x in deceptions}) > 1
    keys = [f"{d['arm']}/{d['loss']}" + (f" {_setting(d)}" if several_settings else "")
            + (f" s{d['seed']}" if several_seeds else "") for d in deceptions]
    width = 0.8 / max(1, len(deceptions))
    for k, (key, entry) in enumerate(zip(keys, deceptions)):
        rates = [entry["regions"][r]["error_rate"] for r in regions]
        xs = np.arange(len(regions)) + (k - (len(deceptions) - 1) / 2) * width
        ax.bar(xs, [np.nan if r is None else r for r in rates], width * 0.95, label=key, color=f"C{k % 10}")
    counts = [deceptions[0]["regions"][r]["n"] for r in regions] if deceptions else [0] * 4
    ax.set_xticks(range(len(regions)), [f"{n}\n(n={c})" for n, c in zip(names, counts)])
    ax.set_ylabel("W2S student's error rate")
    ax.set_ylim(0, 1)
    ax.set_title("Deception regions (Yang et al. 2024): student errors where the weak/strong model knew")
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, path)


def debate_rounds(stats_paths: dict[tuple, str], path: str) -> None:
    """Per debate round: argument length and side-drift rate, per (dataset, seed, strong)."""
    plt, fig, (left, right) = _figure(9, 3.8, columns=2)
    for k, (key, stats_path) in enumerate(stats_paths.items()):
        rounds = read_json(stats_path)["rounds"]
        xs = sorted(int(r) for r in rounds)
        label = " ".join(key)
        left.plot(xs, [rounds[str(r)]["argument_tokens"]["mean"] for r in xs], "o-", label=label, color=f"C{k}")
        right.plot(xs, [rounds[str(r)].get("side_drift_rate") or np.nan for r in xs], "o-", label=label, color=f"C{k}")
    left.set_xlabel("round")
    left.set_ylabel("mean argument tokens")
    right.set_xlabel("round")
    right.set_ylabel("side-drift rate")
    right.set_ylim(0, 1)
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    left.legend(fontsize=7)
    fig.suptitle("Debate statistics per round")
    _save(plt, fig, path)


def _percent(value) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.1f}"


def _with_ci(row, name) -> str:
    if pd.isna(row[name]):
        return "undefined" if name.startswith("pgr") else "—"
    low, high = _percent(row[f"{name}_ci_low"]), _percent(row[f"{name}_ci_high"])
    return f"{_percent(row[name])} [{low}, {high}]"


def _arm_order(cell: pd.DataFrame) -> list[str]:
    """Baseline first, then the arms in the table's order, then the controls; then the same for
    each other setting (``shown`` names: the arm and its setting)."""
    if "shown" not in cell:
        cell = _shown(cell)
    order = []
    for setting in dict.fromkeys(_setting(row) for _, row in cell.iterrows()):
        part = cell[[_setting(row) == setting for _, row in cell.iterrows()]]
        arms = part[part["kind"] == "arm"].drop_duplicates("shown")
        controls = part.loc[part["kind"] == "control", "shown"]
        order += sorted(arms["shown"], key=dict(zip(arms["shown"], arms["arm"] != "baseline")).get)
        order += list(dict.fromkeys(controls))
    return order


def _arms_table_text(cell: pd.DataFrame, losses: list[str]) -> list[list[str]]:
    rows = []
    cell = _shown(cell)
    for arm in _arm_order(cell):
        by_loss = {r["loss"]: r for _, r in cell[cell["shown"] == arm].iterrows()}
        first = next(iter(by_loss.values()))
        name = arm + (" (control)" if first["kind"] == "control" else "")
        text = [name, _percent(first["weak_arm_accuracy"])]
        for loss in losses:
            row = by_loss.get(loss)
            text += (["—", "—"] if row is None
                     else [_with_ci(row, "w2s_accuracy"), _with_ci(row, "pgr_accuracy")])
        rows.append(text)
    return rows


def _references_title(row) -> str:
    parts = [f"floor {_percent(row['floor_accuracy'])}",
             f"ceiling {_percent(row['ceiling_accuracy'])}"]
    if "strong_zero_shot_accuracy" in row:
        parts.append(f"strong zero-shot {_percent(row['strong_zero_shot_accuracy'])}")
    parts += [f"judge ({name.removeprefix('judge_accuracy_')}) {_percent(row[name])}"
              for name in row.index if name.startswith("judge_accuracy_")]
    return f"{_cell_label(row)} (n={row['n_test']})\n" + ", ".join(parts)  # two lines: fits


def arms_table(table: pd.DataFrame, path: str) -> None:
    """Laid out like Lang et al. 2025's results table, one block per cell: arms in rows (baseline
    first, controls last); the arm's weak-model accuracy, then per student loss the W2S student's
    accuracy and PGR with 95 % paired-bootstrap CIs, all in % on test. The block's title holds the
    floor, ceiling, strong zero-shot and judge accuracy."""
    cells = [cell for _, cell in table.groupby(CELL_COLUMNS, sort=False)]
    losses = list(dict.fromkeys(table["loss"]))
    sizes = [_shown(cell)["shown"].nunique() + 1 for cell in cells]  # + the header row
    longest = max((len(name) for name in _shown(table)["shown"]), default=0) + len(" (control)")
    first = max(1.6, 0.075 * longest)  # room for "arm [setting]" at fontsize 8
    plt, fig, axes = _figure(1.0 + first + 3.0 * len(losses), 0.3 * sum(sizes) + 0.9 * len(cells),
                             rows=len(cells), squeeze=False, gridspec_kw={"height_ratios": sizes})
    header = ["arm", "weak-arm acc"] + [f"{what} ({loss})" for loss in losses
                                        for what in ("W2S acc", "PGR")]
    widths = [first, 1.0] + [1.5] * (2 * len(losses))
    for ax, cell in zip(axes[:, 0], cells):
        ax.axis("off")
        drawn = ax.table(cellText=_arms_table_text(cell, losses), colLabels=header, cellLoc="center",
                         colWidths=[w / sum(widths) for w in widths], bbox=[0, 0, 1, 1])
        drawn.auto_set_font_size(False)
        drawn.set_fontsize(8)
        for column in range(len(header)):
            drawn[0, column].set_facecolor("#eeeeee")
        ax.set_title(_references_title(cell.iloc[0]), fontsize=9)
    fig.suptitle("Arms vs baseline: accuracy and PGR in % [95% paired-bootstrap CI], test split",
                 fontsize=10)
    _save(plt, fig, path)


def deception_by_setting(table: pd.DataFrame, path: str) -> None:
    """Yang et al.'s Deception Score per training setting, one panel per cell: x = setting, one bar
    per arm/loss (the arms' students; controls have no weak model of their own), 95 % bootstrap CIs
    as error bars; an undefined DS (the student never disagrees with the ceiling) is marked."""
    arms = table[table["kind"] == "arm"]
    if "setting" not in arms:
        arms = arms.assign(setting=NO_SETTING)
    cells = [cell for _, cell in arms.groupby(CELL_COLUMNS, sort=False)]
    plt, fig, axes = _figure(9, 0.5 + 3.2 * max(1, len(cells)), rows=max(1, len(cells)),
                             squeeze=False)
    for ax, cell in zip(axes[:, 0], cells):
        settings = list(dict.fromkeys(cell["setting"]))
        keys = list(dict.fromkeys(zip(cell["arm"], cell["loss"])))
        width = 0.8 / max(1, len(keys))
        for k, (arm, loss) in enumerate(keys):
            for i, setting in enumerate(settings):
                rows = cell[(cell["arm"] == arm) & (cell["loss"] == loss)
                            & (cell["setting"] == setting)]
                x = i + (k - (len(keys) - 1) / 2) * width
                for _, row in rows.iterrows():
                    if pd.isna(row["ds"]):
                        ax.annotate("undefined", (x, 0.02), ha="center", fontsize=7, rotation=90,
                                    color="tab:red")
                        continue
                    ax.bar(x, row["ds"], width * 0.9, color=f"C{k % 10}", alpha=0.35)
                    ax.errorbar(x, row["ds"], yerr=_err(row, "ds"), fmt="o", color=f"C{k % 10}",
                                capsize=3)
        # The references of the first arm/loss: a student departing from the ceiling at random,
        # and one copying its weak supervisor (stats.deception_ds).
        first = cell[(cell["arm"] == keys[0][0]) & (cell["loss"] == keys[0][1])].iloc[0]
        for name, style, label in (("ds_chance", ":", "random departures"),
                                   ("ds_weak_copy", "--", "copying the weak model")):
            if name in first and not pd.isna(first[name]):
                ax.axhline(first[name], color="grey", linestyle=style, linewidth=1)
                ax.annotate(f"{label} ({first[name]:.2f})", (len(settings) - 0.5, first[name]),
                            ha="right", va="bottom", fontsize=7, color="grey")
        ax.set_xticks(range(len(settings)), [s.replace(VIA, "\n" + VIA) for s in settings],
                      fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("DS (95% CI)")
        ax.set_title(_cell_label(cell.iloc[0]), fontsize=9)
        ax.legend(handles=_patches(f"{arm}/{loss}" for arm, loss in keys), fontsize=7, ncol=2)
    fig.suptitle("Deception Score (Yang et al. 2024) per setting\n"
                 "share of student–ceiling disagreements in S_k ∩ W_uk (W: the arm's weak model)",
                 fontsize=10)
    _save(plt, fig, path)


def _task_column(frame: pd.DataFrame) -> str | None:
    """The column naming a row's task: ``task`` if the frame has one, else ``dataset``."""
    return next((name for name in ("task", "dataset") if name in frame), None)


def _yerr(rows: pd.DataFrame, name: str):
    """Asymmetric error bars (2 × n) from ``name``'s CI columns; None when it has none."""
    if f"{name}_ci_low" not in rows or f"{name}_ci_high" not in rows:
        return None
    return np.hstack([_err(row, name) for _, row in rows.iterrows()]) if len(rows) else None


def _by_task(ax, frame: pd.DataFrame, x: str, y: str) -> None:
    """A scatter of y against x, one colour per task, y's 95 % CIs as error bars; rows where
    either is undefined are left out."""
    frame = frame.dropna(subset=[x, y])
    task = _task_column(frame)
    groups = frame.groupby(task, sort=False) if task else [("all rows", frame)]
    for k, (name, rows) in enumerate(groups):
        ax.errorbar(rows[x], rows[y], yerr=_yerr(rows, y), fmt="o", color=f"C{k % 10}",
                    capsize=3, label=str(name))
    if len(frame):
        ax.legend(fontsize=8, title=task)


def pgr_vs_misfit(frame: pd.DataFrame, path: str, x: str = "misfit") -> None:
    """PGR on accuracy against the student's misfit to its weak labels on w2s_train, over many
    cells: Charikar et al. (2024) bound the student's gain over its supervisor below by the
    misfit, so PGR should rise with it."""
    plt, fig, ax = _figure(7, 4.5)
    _by_task(ax, frame, x, "pgr_accuracy")
    ax.axhline(0, color="black", linewidth=0.8)
    low, high = ax.get_ylim()  # PGR's CI is unbounded where the gap is near 0
    ax.set_ylim(max(low, -2.0), min(high, 2.0))
    ax.set_xlabel(f"{x}: mean (student − weak label)² on w2s_train" if x == "misfit" else x)
    ax.set_ylabel("PGR on accuracy (95% CI; axis cut at ±2)")
    ax.set_title("PGR vs misfit (Charikar et al. 2024: gain ≥ misfit)")
    _save(plt, fig, path)


def deception_vs_gap(frame: pd.DataFrame, path: str, x: str = "gap") -> None:
    """Yang et al.'s Deception Score against the weak–strong capacity gap (``gap`` = ceiling −
    floor accuracy unless the frame has that column, or any other ``x`` column): does the
    student deceive its supervisor more as the gap widens, as Yang et al. (2024) report?"""
    if x == "gap" and "gap" not in frame:
        frame = frame.assign(gap=frame["ceiling_accuracy"] - frame["floor_accuracy"])
    plt, fig, ax = _figure(7, 4.5)
    _by_task(ax, frame, x, "ds")
    ax.set_ylim(0, 1)
    ax.set_xlabel("capacity gap: ceiling − floor test accuracy" if x == "gap" else x)
    ax.set_ylabel("DS (95% CI)")
    ax.set_title("Deception Score (Yang et al. 2024) vs weak–strong gap")
    _save(plt, fig, path)


def pgr_per_task(frame: pd.DataFrame, path: str) -> None:
    """In the style of Burns et al. 2023's Fig. 3: per (weak, strong) rung a group of bars, one
    per task, each the median PGR on accuracy of the task's rows (seeds) with every row as a point
    with its 95 % CI. Filter the frame to one arm, loss and setting first."""
    task = _task_column(frame) or "dataset"
    frame = frame.assign(rung=[f"{w}→{s}" for w, s in zip(frame["weak"], frame["strong"])],
                         **({} if task in frame else {task: "all rows"}))
    rungs, tasks = list(dict.fromkeys(frame["rung"])), list(dict.fromkeys(frame[task]))
    plt, fig, ax = _figure(max(7.5, 1.2 + 0.35 * len(rungs) * len(tasks)), 4.5)
    width = 0.8 / max(1, len(tasks))
    for k, name in enumerate(tasks):
        for i, rung in enumerate(rungs):
            rows = frame[(frame[task] == name) & (frame["rung"] == rung)].dropna(
                subset=["pgr_accuracy"])
            if not len(rows):
                continue
            x = i + (k - (len(tasks) - 1) / 2) * width
            ax.bar(x, rows["pgr_accuracy"].median(), width * 0.9, color=f"C{k % 10}", alpha=0.35)
            ax.errorbar([x] * len(rows), rows["pgr_accuracy"], yerr=_yerr(rows, "pgr_accuracy"),
                        fmt="o", color=f"C{k % 10}", capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(1, color="tab:green", linestyle="--", linewidth=0.8)
    # PGR's CI runs off to +-tens where the ceiling barely beats the floor: show -2..2
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, -2.0), min(high, 2.0))
    ax.set_xticks(range(len(rungs)), rungs, fontsize=8, rotation=30 if len(rungs) > 3 else 0,
                  ha="right" if len(rungs) > 3 else "center")
    ax.set_ylabel("PGR on accuracy (95% CI; axis cut at ±2)")
    ax.set_title("PGR per task and weak → strong pair (after Burns et al. 2023, Fig. 3)")
    ax.legend(handles=_patches(tasks), fontsize=8, title=task)
    _save(plt, fig, path)


def headline_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The students the headline figure draws: the baseline arm's (kind ``arm``, setting "none")
    in the study's W2S cells, the cells that train the baseline arm alone (the default study's
    ``winowhy``, sized for W2S, beside the small ``winowhy_eda`` ablation). A study without such
    a cell gives every cell's baseline students. In the summary's order."""
    arms = summary[summary["kind"] == "arm"]
    students = arms[arms["arm"] == "baseline"]
    if "setting" in students:
        students = students[students["setting"].fillna(NO_SETTING) == NO_SETTING]
    arms_per_cell = arms.groupby(CELL_COLUMNS, sort=False)["arm"].agg(frozenset)
    w2s_cells = {cell for cell, names in arms_per_cell.items() if names == {"baseline"}}
    if w2s_cells:
        keys = zip(*(students[column] for column in CELL_COLUMNS))
        students = students[[key in w2s_cells for key in keys]]
    return students


def _pgr_text(row) -> str:
    if pd.isna(row["pgr_accuracy"]):
        reason = row.get("pgr_undefined_reason")
        return "PGR undefined" + (f" ({reason})" if isinstance(reason, str) and reason else "")
    return (f"PGR {row['pgr_accuracy']:.2f} "
            f"[{row['pgr_accuracy_ci_low']:.2f}, {row['pgr_accuracy_ci_high']:.2f}]")


def headline(summary: pd.DataFrame, out_path: str) -> pd.DataFrame:
    """The study's headline figure (the README's and the report's first): for each baseline student
    of the W2S cells (``headline_rows``), the weak floor, the W2S student and the strong ceiling
    as test accuracy with 95 % CIs (left), and W2S − floor in points with its paired-bootstrap CI,
    labelled with PGR and its CI (right). Returns the rows drawn."""
    from .errors import StudyError

    rows = headline_rows(summary)
    if not len(rows):
        raise StudyError("the summary has no baseline-arm student (kind arm, setting none) to draw")
    plt, fig, (left, right) = _figure(10, 1.6 + 0.75 * len(rows), columns=2, sharey=True,
                                      gridspec_kw={"width_ratios": [3, 2]})
    ys = -np.arange(len(rows), dtype=float)
    labels = [f"{r['dataset']} s{r['seed']} (n={int(r['n_test'])})\n{r['loss']} student"
              for _, r in rows.iterrows()]
    for name, shift, color, label in (("floor_accuracy", 0.2, "tab:gray", "floor (weak, gold)"),
                                      ("w2s_accuracy", 0.0, "tab:blue", "W2S student"),
                                      ("ceiling_accuracy", -0.2, "tab:green",
                                       "ceiling (strong, gold)")):
        for k, (y, (_, row)) in enumerate(zip(ys, rows.iterrows())):
            left.errorbar(row[name], y + shift, xerr=_err(row, name), fmt="o", color=color,
                          capsize=3, label=label if k == 0 else None)
    left.axvline(0.5, color="lightgray", linestyle=":", zorder=0)
    left.set_yticks(ys, labels, fontsize=8)
    left.set_xlabel("test accuracy (95% paired-bootstrap CI)")
    left.legend(fontsize=8, ncol=3, loc="lower left", bbox_to_anchor=(0, 1), frameon=False)
    for y, (_, row) in zip(ys, rows.iterrows()):
        gain = 100 * row["w2s_minus_floor"]
        err = [[100 * max(row["w2s_minus_floor"] - row["w2s_minus_floor_ci_low"], 0)],
               [100 * max(row["w2s_minus_floor_ci_high"] - row["w2s_minus_floor"], 0)]]
        color = "tab:blue" if row["w2s_minus_floor_ci_low"] > 0 else "tab:red"
        right.errorbar(gain, y, xerr=err, fmt="o", color=color, capsize=3)
        right.annotate(f"{gain:+.1f} points, {_pgr_text(row)}", (gain, y), xytext=(0, 8),
                       textcoords="offset points", ha="center", fontsize=8)
    right.axvline(0, color="black", linewidth=0.8)
    right.set_xlabel("W2S − floor, accuracy points (95% CI)")
    right.set_ylim(ys[-1] - 0.6, 0.6)
    pairs = " / ".join(dict.fromkeys(f"{w} → {s}" for w, s in zip(rows["weak"], rows["strong"])))
    fig.suptitle(f"Weak-to-strong generalisation of the baseline students ({pairs})", fontsize=10)
    _save(plt, fig, out_path)
    return rows


def main(argv: list[str] | None = None) -> None:
    """``python -m w2s_eda.plots [summary.csv] [image]`` (``make figure``): redraws the headline
    figure from a finished study's summary, by default results/summary.csv into
    docs/img/headline.png, the README's figure."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    summary = args[0] if args else "results/summary.csv"
    out_path = args[1] if len(args) > 1 else "docs/img/headline.png"
    rows = headline(pd.read_csv(summary), out_path)
    print(f"{out_path}: {len(rows)} baseline students from {summary}")


if __name__ == "__main__":
    main()
