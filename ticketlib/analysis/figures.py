"""One plotting style and one way to save figures (PNG for HTML, PDF for print)."""
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from ticketlib.names import CONDITIONS, FAMILIES
from ticketlib.names import SCHEMES as INITIALIZERS

FIGURES = Path("figures")
WIDTH = 6.3  # inches: the text width of an A4 page with 2.5 cm margins
# colorblind-palette index per condition: distinct within any figure that shows them together (the
# controls; the mechanism probes; each pruning-at-init method, whose _global variant shares its colour)
CONDITION_COLOURS = {"ticket": 0, "reinit": 1, "random": 2, "copy": 3, "sign_kept": 4, "random_signs": 5,
                     "shuffled": 6, "rescaled": 7, "init_magnitude": 8, "snip": 4, "grasp": 1, "synflow": 2}


# schemes with no normal/uniform twin, which tab20's order would give the pale half of a pair
UNPAIRED_COLOURS = {"truncated_normal": "#637939", "signed_constant": "#393b79"}


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1,
                  rc={"figure.dpi": 110, "savefig.dpi": 200, "legend.frameon": False,
                      "axes.titleweight": "bold"})


def palette(names) -> dict:
    """A colour per name that is the same in every figure: initializers by registry order (tab20
    keeps each normal/uniform pair in one hue, grey left for context), conditions by their fixed order."""
    names = list(names)
    if set(names) <= set(INITIALIZERS):  # tab20 without its grey pair: grey is for context lines
        universe, colours = list(INITIALIZERS), [c for i, c in enumerate(sns.color_palette("tab20", 20)) if i not in (14, 15)]
        for name, colour in UNPAIRED_COLOURS.items():  # a scheme without a pair gets a dark colour, not a pale one
            colours[universe.index(name)] = colour
    elif set(names) <= set(CONDITIONS):
        colours = sns.color_palette("colorblind", 10)
        return {name: colours[CONDITION_COLOURS[name.removesuffix("_global")]] for name in names}
    else:  # colorblind's order without its vermillion next to its orange (two lines alike in one panel)
        universe = sorted(names)
        colours = [sns.color_palette("colorblind", 10)[i] for i in (0, 1, 2, 4, 9, 5, 3, 6, 8, 7)]
        colours += sns.color_palette("husl", max(0, len(universe) - len(colours)))
    return {name: colours[universe.index(name)] for name in names}


def sparsity_axis(ax, levels, most_ticks: int = 5) -> None:
    """Log-scaled percent of weights remaining, dense on the left, ticks at well-spaced data levels."""
    levels = sorted({round(float(p), 1) for p in levels}, reverse=True)
    gap = math.log(levels[0] / levels[-1]) / max(1, most_ticks - 1) * 0.8
    ticks = [levels[0]]
    for level in levels[1:]:
        if math.log(ticks[-1] / level) >= gap:
            ticks.append(level)
    if ticks[-1] != levels[-1]:  # always show the sparsest level, in place of a crowded neighbour
        if len(ticks) > 1 and math.log(ticks[-1] / levels[-1]) < gap:
            ticks.pop()
        ticks.append(levels[-1])
    ax.set_xscale("log")
    ax.set_xlim(levels[0] * 1.15, levels[-1] / 1.15)  # reversed limits: dense first (idempotent)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:.0f}" if t >= 10 else f"{t:g}" for t in ticks]))
    ax.set_xlabel("weights remaining (%, log scale)")


LINE_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1, 1, 1)), "v"), ((0, (1, 3)), "P")]  # told apart in grey print too


def band_plot(ax, summary, hue: str, colours: dict, x: str = "weights_remaining", styled: bool = False) -> None:
    """Mean line with its interval band per `hue` value; summary has columns x, mean, low, high;
    `styled`: each line also its own dash and marker, by the name's place in `colours` (the same in every panel)."""
    order = list(colours)
    for name, group in summary.groupby(hue, sort=True):
        group = group.sort_values(x)
        style, marker = LINE_STYLES[order.index(name) % len(LINE_STYLES)] if styled else ("-", "o")
        ax.plot(group[x], group["mean"], linestyle=style, marker=marker if len(group) < 30 else None, markersize=3,
                color=colours[name], label=str(name))
        ax.fill_between(group[x], group.low, group.high, color=colours[name], alpha=0.15, lw=0)


def grey_means(ax, summary, hue: str, x: str, colour: str, label: str | None = None) -> None:
    """Each `hue` value's mean as a thin grey line behind the coloured ones (context, no band);
    `label` on the first line only, so that a legend gives them one entry."""
    for i, (_, group) in enumerate(summary.groupby(hue)):
        group = group.sort_values(x)
        ax.plot(group[x], group["mean"], color=colour, lw=0.7, zorder=1, label=label if i == 0 else None)


def panels(summary, panel: str, hue: str, ylabel: str, colours: dict | None = None, columns: int = 3,
           x: str = "weights_remaining", titles=str, sharey: bool = True, height: float = 2.2,
           reference: float | None = None, fit_to_means: bool = False, in_grey=(), grey_label: str = "other schemes"):
    """Small multiples: one panel per value of `panel`, a line with its band per value of `hue`
    (columns x, mean, low, high; each its own colour, dash and marker), the sparsity axis when x is
    weights_remaining, one legend above; `reference`: a dotted grey line at that y (a threshold);
    `fit_to_means`: the y axis spans the means (and the reference), bands reaching past it are cut
    at the frame, so that one wide band does not flatten every line; `in_grey`: `hue` values drawn
    as thin grey means behind the others, one legend entry (`grey_label`) for all of them, so that
    a panel keeps few coloured lines."""
    names = (list(summary[panel].cat.categories) if isinstance(summary[panel].dtype, pd.CategoricalDtype)
             else list(dict.fromkeys(summary[panel])))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH, height * rows + 0.6), squeeze=False, sharey=sharey)
    grey = summary[hue].isin(list(in_grey))
    colours = colours or palette(summary[hue][~grey].unique())
    for ax, name in zip(axes.flat, names):
        if reference is not None:
            ax.axhline(reference, color="0.45", ls=":", lw=0.9, zorder=0)
        grey_means(ax, summary[grey & (summary[panel] == name)], hue, x, "0.75", grey_label)
        band_plot(ax, summary[~grey & (summary[panel] == name)], hue, colours, x=x, styled=True)
        ax.set_title(titles(name), fontsize=8)
        if x == "weights_remaining":
            sparsity_axis(ax, summary.weights_remaining, most_ticks=4)
        ax.set(xlabel="", ylabel="")
    if fit_to_means:
        low, high = min(summary["mean"].min(), reference or 0.0), max(summary["mean"].max(), reference or 0.0)
        margin = 0.08 * (high - low)
        for ax in axes.flat:
            ax.set_ylim(low - margin, high + margin)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    entries = dict(zip(*reversed(axes.flat[0].get_legend_handles_labels())))
    entries |= {grey_label: entries.pop(grey_label)} if grey_label in entries else {}  # the grey lines' entry last
    labels, handles = list(entries), list(entries.values())
    fig.supylabel(ylabel, fontsize=9)
    fig.supxlabel("weights remaining (%, log scale)" if x == "weights_remaining" else x, fontsize=9)
    legend_rows = -(-len(labels) // 4)
    legend_inches = 0.1 + 0.16 * (legend_rows - 1)  # a 7-pt row and its spacing, so titles stay clear
    fig.tight_layout(rect=(0, 0, 1, 1 - legend_inches / (height * rows + 0.6)))
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), fontsize=7, bbox_to_anchor=(0.5, 1.0))
    return fig


def spaced_labels(values, ratio: float = 3.9) -> list[str]:
    """Tick labels for increasing positive values on a log axis, blank where a label would crowd
    the last one shown (closer than `ratio` times)."""
    labels, last = [], None
    for v in values:
        shown = last is None or v / last >= ratio
        labels.append(f"{v:g}" if shown else "")
        last = v if shown else last
    return labels


def sweep_panels(summary, x: str, xlabel: str, ylabel: str, reference=None, reference_label: str = "",
                 hue: str = "init", zoom_to: float | None = None):
    """One panel per round (titled by its level), `hue` lines against `x` on a log axis; an optional
    `reference` (columns round, mean, low, high) drawn as a grey band across each panel. `zoom_to`:
    a second row of the same panels for x ≤ zoom_to only, each y axis fitted to what it shows."""
    rounds = sorted(summary["round"].unique())
    rows = 1 if zoom_to is None else 2
    fig, axes = plt.subplots(rows, len(rounds), figsize=(WIDTH, 2.6 + 1.9 * (rows - 1)), squeeze=False)
    colours = palette(summary[hue].unique())
    for row, limit in enumerate([None, zoom_to][:rows]):
        shown = summary if limit is None else summary[summary[x] <= limit]
        values = sorted(shown[x].unique())
        for ax, r in zip(axes[row], rounds):
            at = shown[shown["round"] == r]
            if reference is not None and (mark := reference[reference["round"] == r]).size:
                band = mark.iloc[0]
                ax.axhspan(band.low, band.high, color="0.85", lw=0, zorder=0)
                ax.axhline(band["mean"], color="0.5", lw=0.8, zorder=0, label=reference_label)
            band_plot(ax, at, hue, colours, x=x, styled=True)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(values))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(FixedFormatter(spaced_labels(values)))
            ax.tick_params(axis="x", labelsize=7)
            level = f"{at.weights_remaining.iloc[0]:.1f}% of weights"
            ax.set_title(level if limit is None else f"{level}, zoomed", fontsize=8)
            ax.set(xlabel="", ylabel="")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.supylabel(ylabel, fontsize=9)
    fig.supxlabel(xlabel, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.12 / rows))
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), fontsize=7, bbox_to_anchor=(0.5, 1.0))
    return fig


def family_panels(summary, x: str, xlabel: str, ylabel: str, format_x=lambda ax: None, zoom_from=None,
                  unscaled: str = next(iter(FAMILIES))):
    """One panel per family of initializers in `summary` (columns init, `x`, mean, low, high): the
    family's schemes in colour with their bands, every other scheme's mean in grey behind them.
    The families' panels share a y axis, but for the `unscaled` schemes', whose values lie far off
    theirs; that axis spans their values from x = `zoom_from` on (all of them by default);
    `format_x(ax)` sets up each x axis."""
    present = set(summary.init)
    families = {f: [n for n in names if n in present] for f, names in FAMILIES.items()}
    families = {f: names for f, names in families.items() if names}
    rows = -(-len(families) // 3)
    fig, axes = plt.subplots(rows, 3, figsize=(WIDTH, 2.2 * rows + 0.3), squeeze=False)
    colours = palette(summary.init.unique())
    scaled = summary[~summary.init.isin(FAMILIES[unscaled])]
    shown = scaled if zoom_from is None else scaled[scaled[x] >= zoom_from]
    for ax, (family, names) in zip(axes.flat, families.items()):
        behind = summary if family == unscaled else scaled
        grey_means(ax, behind[~behind.init.isin(names)], "init", x, "0.85")
        band_plot(ax, summary[summary.init.isin(names)], "init", colours, x=x, styled=True)
        ax.set_title(family, fontsize=8)
        format_x(ax)
        ax.set(xlabel="", ylabel="")
        if family != unscaled and len(shown):
            pad = 0.05 * (shown.high.max() - shown.low.min())
            ax.set_ylim(shown.low.min() - pad, shown.high.max() + pad)
    for ax in axes.flat[len(families):]:
        ax.set_visible(False)
    handles = {label: h for ax in axes.flat[:len(families)] for h, label in zip(*ax.get_legend_handles_labels())}
    fig.supylabel(ylabel, fontsize=9)
    fig.supxlabel(xlabel, fontsize=9)
    if len(families) < axes.size:  # the legend in the first empty slot, off the data
        spare = axes.flat[len(families)]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(handles.values(), handles.keys(), loc="center", ncol=2, fontsize=6, handlelength=1.8,
                     title="grey: the other schemes", title_fontsize=6, columnspacing=0.6, handletextpad=0.4)
        fig.tight_layout()
    else:  # no empty slot: the legend above the panels, clear of the x label below them
        rows_of_legend = -(-len(handles) // 4)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.03 * rows_of_legend * 2.2 / (2.2 * rows + 0.3) * 3))
        fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=4, fontsize=7, handlelength=2.2)
    return fig


def density_grid(samples, order: list):
    """Small multiples of weight-value densities per scheme (columns `init`, `layer`, `weight`)."""
    grid = sns.FacetGrid(samples, col="init", col_wrap=4, hue="layer", sharex=False, sharey=False,
                         height=1.55, aspect=1.35, col_order=order)
    grid.map_dataframe(sns.histplot, x="weight", stat="density", element="step", fill=False, bins=60,
                       common_norm=False)
    grid.set_titles("{col_name}", size=10)
    grid.tick_params(labelsize=8)
    grid.set_axis_labels("weight value", "density")
    grid.set(ylim=(0, None))
    grid.add_legend(title="layer")
    return grid.figure


def save(fig, name: str, folder: str | Path = FIGURES) -> Path:
    """Write `name`.png and `name`.pdf; returns the PNG path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.pdf", bbox_inches="tight", metadata={"CreationDate": None})  # same bytes each build
    fig.savefig(folder / f"{name}.png", bbox_inches="tight")
    return folder / f"{name}.png"
