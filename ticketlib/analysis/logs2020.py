"""The 2020 study's own training logs beside our as-run reproduction of its protocol (no torch).

results/logs2020/logs.csv (tools/logs2020.py; its README names the source) holds, per scheme,
seed (42–52) and epoch, what the 2020 code logged. Its accuracy names are swapped: `main.py`
calls `simple_log(args, trainer, tester, …)` but declares `simple_log(args, tester, trainer, …)`,
so the log's `test_acc` is the Trainer's accuracy over the 60,000 training images and its
`train_acc` the Tester's over the 10,000 test images. The logged values agree: every
`logged_train_acc` is a whole number of hundredths (k/10,000), while most `logged_test_acc` are not
(k/60,000). So the 2020 "test accuracy" figures are compared with our `train_acc` and the 2020
"train accuracy" with our `test_acc` (SPLITS).

Both are read where the 2020 figures read them: after a round's last epoch, right before pruning
(the 2020 epoch 5·r + 4; our round's last evaluation). Accuracies are in percent.
"""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy import stats as scipy_stats

from ticketlib.analysis import figures, stats
from ticketlib.analysis.results import RESULTS
from ticketlib.errors import TicketError
from ticketlib.names import FAMILIES, SCHEMES

# split actually measured → (the 2020 log's column, our table's column)
SPLITS = {"train": ("logged_test_acc", "train_acc"), "test": ("logged_train_acc", "test_acc")}
COLUMNS = ["scheme", "seed", "epoch", "round", "sparsity", "params_remaining", "logged_train_acc",
           "logged_test_acc"]


def read_logs(results: str | Path = RESULTS) -> pd.DataFrame:
    """results/logs2020/logs.csv: one row per 2020 run (scheme, seed) × epoch, as logged."""
    path = Path(results) / "logs2020" / "logs.csv"
    if not path.is_file():
        raise TicketError(f"no {path}; make it with `python tools/logs2020.py CHECKOUT/logs --out {path}`")
    logs = pd.read_csv(path)
    if list(logs.columns) != COLUMNS:
        raise TicketError(f"{path} has columns {list(logs.columns)}, not {COLUMNS}")
    return logs


def before_pruning(logs: pd.DataFrame) -> pd.DataFrame:
    """Each 2020 run's last epoch of every round (what its figures plotted)."""
    return logs[logs.epoch == logs.groupby(["scheme", "seed", "round"]).epoch.transform("max")]


def round_ends(table: pd.DataFrame) -> pd.DataFrame:
    """Each of our runs' last evaluation of every round, accuracies in percent."""
    stats.one_setup(table, varying=["init"])
    last = table[table.iteration == table.groupby(["run_id", "round"]).iteration.transform("max")]
    return last.assign(train_acc=last.train_acc * 100, test_acc=last.test_acc * 100)


def welch_interval(a, b, level: float = stats.LEVEL) -> tuple[float, float]:
    """Welch's t interval for mean(a) − mean(b) (unequal variances and sizes)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    difference, se = a.mean() - b.mean(), np.sqrt(va + vb)
    if se == 0:
        return (difference, difference)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = scipy_stats.t.ppf((1 + level) / 2, df) * se
    return (difference - half, difference + half)


def agreement(logs: pd.DataFrame, as_run_table: pd.DataFrame) -> pd.DataFrame:
    """Per split measured × scheme × round: the 2020 mean over its seeds, ours with its 95% t
    interval over our seeds, their difference (2020 − ours, points) with its Welch 95% interval;
    `inside_ours`: the 2020 mean lies in our interval; `welch_agrees`: the Welch interval holds 0.
    `params_remaining` / `weights_remaining`: the 2020 / our percent of parameters kept."""
    theirs, ours = before_pruning(logs), round_ends(as_run_table)
    rows = []
    for split, (logged, measured) in SPLITS.items():
        for (scheme, round_), group in theirs.groupby(["scheme", "round"]):
            mine = ours[(ours.init == scheme) & (ours["round"] == round_)]
            if mine.empty:
                continue
            mean_ours, low, high = stats.mean_ci(mine[measured])
            mean_2020 = group[logged].mean()
            welch_low, welch_high = welch_interval(group[logged], mine[measured])
            rows.append({"split": split, "scheme": scheme, "round": round_,
                         "params_remaining": group.params_remaining.iloc[0],
                         "weights_remaining": mine.weights_remaining.iloc[0],
                         "seeds_2020": len(group), "mean_2020": mean_2020, "seeds_ours": len(mine),
                         "mean_ours": mean_ours, "low_ours": low, "high_ours": high,
                         "difference": mean_2020 - mean_ours, "welch_low": welch_low, "welch_high": welch_high,
                         "inside_ours": low <= mean_2020 <= high, "welch_agrees": welch_low <= 0 <= welch_high})
    if not rows:
        raise TicketError("the 2020 logs and the table share no scheme and round")
    table = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(SCHEMES)}
    return table.sort_values(["split", "scheme", "round"], key=lambda c: c.map(order) if c.name == "scheme" else c,
                             ignore_index=True)


def summary(agreed: pd.DataFrame) -> pd.DataFrame:
    """Per split × round: median and largest |difference| over schemes, and the fraction of
    schemes whose 2020 mean lies in our interval and whose Welch interval holds 0."""
    return (agreed.assign(abs_difference=agreed.difference.abs())
            .groupby(["split", "round"], as_index=False)
            .agg(weights_remaining=("weights_remaining", "first"), schemes=("scheme", "nunique"),
                 median_abs_difference=("abs_difference", "median"), max_abs_difference=("abs_difference", "max"),
                 inside_ours=("inside_ours", "mean"), welch_agrees=("welch_agrees", "mean")))


def agreement_values(agreed: pd.DataFrame, down_to: float = 3.5) -> dict:
    """The paper's numbers: over every split × scheme × round, the percent whose Welch interval holds
    0 and whose 2020 mean lies in our interval; the largest per-round median |difference| from dense
    down to `down_to`% of the parameters, and the median |difference| below it (points)."""
    rounds = summary(agreed)
    upper = rounds.weights_remaining >= down_to * 0.99
    return dict(cells=len(agreed), welch_agrees=f"{agreed.welch_agrees.mean() * 100:.1f}",
                inside_ours=f"{agreed.inside_ours.mean() * 100:.1f}", down_to=f"{down_to:g}",
                max_median_gap=f"{rounds[upper].median_abs_difference.max():.2f}",
                median_gap_below=f"{agreed[agreed.weights_remaining < down_to * 0.99].difference.abs().median():.1f}",
                seeds_2020=int(agreed.seeds_2020.max()), seeds_ours=int(agreed.seeds_ours.max()))


def overlay(agreed: pd.DataFrame, split: str = "train"):
    """One panel per family of schemes: our as-run mean over seeds as a line with its 95% band, the
    2020 logs' mean over seeds as crosses of the same colour, against percent of parameters remaining
    (log scale); one legend above. The y axis spans the means: t bands over few seeds overshoot 100%
    and, where seeds collapse, reach far below."""
    rows = agreed[agreed.split == split].sort_values("weights_remaining")
    families = {f: [n for n in names if n in set(rows.scheme)] for f, names in FAMILIES.items()}
    families = {f: names for f, names in families.items() if names}
    fig, axes = plt.subplots(1, len(families), figsize=(figures.WIDTH, 3.2), squeeze=False, sharey=True)
    colours = figures.palette(rows.scheme.unique())
    for ax, (family, names) in zip(axes.flat, families.items()):
        for scheme in names:
            mine = rows[rows.scheme == scheme]
            ax.plot(mine.weights_remaining, mine.mean_ours, color=colours[scheme], lw=1, label=scheme)
            ax.fill_between(mine.weights_remaining, mine.low_ours, mine.high_ours, color=colours[scheme], alpha=0.15, lw=0)
            ax.scatter(mine.params_remaining, mine.mean_2020, marker="x", s=16, lw=0.9, color=colours[scheme], zorder=3)
        figures.sparsity_axis(ax, rows.weights_remaining, most_ticks=4)
        ax.set_title(family, fontsize=8)
        ax.set(xlabel="", ylabel="")
    lowest = min(rows.mean_ours.min(), rows.mean_2020.min())
    axes.flat[0].set_ylim(lowest - 0.05 * (100 - lowest), 100.5)
    kinds = [Line2D([], [], color="0.4", lw=1, label="ours, as run: mean, 95% CI"),
             Line2D([], [], color="0.4", marker="x", lw=0, label="2020 logs: mean")]
    handles = [h for ax in axes.flat for h in ax.get_legend_handles_labels()[0]] + kinds
    fig.supylabel(f"{split}-set accuracy before pruning (%)", fontsize=9)
    fig.supxlabel("parameters remaining (%, log scale)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.82))
    fig.legend(handles=handles, loc="upper center", ncol=4, fontsize=7, bbox_to_anchor=(0.5, 1.0))
    return fig
