"""The paper's tables and quoted values, built from statistics (stats.py) of one grid's table.

Notebooks call these and only plot; each returns a DataFrame for `Outputs.table` or a dict for
`Outputs.values`. Cells read 'mean [low, high]' (95% t intervals over seeds); accuracies in percent.
"""
import numpy as np
import pandas as pd

from ticketlib.analysis import stats
from ticketlib.names import CONDITIONS, FAMILIES
from ticketlib.names import SCHEMES as INITIALIZERS


def ordered(names) -> list[str]:
    """Initializer names in registry order (the order of every legend and table)."""
    present = set(names)
    return [n for n in INITIALIZERS if n in present] + sorted(present - set(INITIALIZERS))


def in_percent(summary: pd.DataFrame, floor: float = -100) -> pd.DataFrame:
    """An over_seeds summary of fractions (or their differences) with mean, low and high in percent;
    the bounds stop at 100 and `floor` (0 for a quantity that is never negative), where a t interval
    over a few seeds can pass the scale's end."""
    return summary.assign(**{c: (summary[c] * 100).clip(floor, 100) for c in ("mean", "low", "high")})


def number(value, digits: int = 1) -> str:
    """A rounded number with a true minus sign, and no '−0.0' for a value that rounds to zero."""
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text.replace("-", "−")


def with_ci(mean, low, high, digits: int = 1) -> str:
    """'61.2 [60.1, 62.3]', or '—' for a missing value; an interval that excludes 0 but whose end
    rounds to 0 gets another digit ('−0.2 [−0.40, −0.02]'), so it never reads as reaching 0."""
    if np.isnan(mean):
        return "—"
    if np.isnan(low):
        return number(mean, digits)
    if (low > 0 or high < 0) and 0 in (round(low, digits), round(high, digits)):
        digits += 1
    return f"{number(mean, digits)} [{number(low, digits)}, {number(high, digits)}]"


def matching_cell(level: float, sparsest: float) -> str:
    """The sparsest level matching dense; '≤' where it is the sparsest tested (the tickets match at
    least that far: censored by the schedule); '—' where undefined."""
    return "—" if np.isnan(level) else f"≤ {level:.1f}" if np.isclose(level, sparsest) else f"{level:.1f}"


def summary_table(summary: pd.DataFrame, levels, speedup_at: float) -> pd.DataFrame:
    """initializer_summary as the paper's table: 'mean [low, high]' cells; levels never reached dropped;
    a column of failed runs when any run failed."""
    summary = summary.set_index("init").loc[ordered(summary.init)].reset_index()

    def cells(prefix):
        return [with_ci(*row) for row in summary[[prefix, f"{prefix}_low", f"{prefix}_high"]].values]
    def seeds_allow(row):  # a range of levels, not an interval: written apart from the t intervals
        return "—" if np.isnan(row.matching) else f"{row.matching_low:.1f} / {row.matching_high:.1f}"
    columns = {"initializer": summary.init, "dense (%)": cells("dense"),
               "matches dense down to (%)": [matching_cell(m, summary.sparsest.min()) for m in summary.matching],
               "not ruled out / above dense (%)": [seeds_allow(row) for row in summary.itertuples()]}
    for level in levels:
        columns[f"at {level:g}% (%)"] = cells(f"acc_{level:g}")
    columns[f"speed-up at {speedup_at:g}%"] = ["—" if np.isnan(x) else f"{x:.2f}" for x in summary.speedup]
    if "censored" in summary:
        columns["censored run-rounds"] = [f"{c} of {n}" for c, n in zip(summary.censored, summary.run_rounds)]
    if summary.failed.any():
        columns["failed runs (of seeds)"] = [f"{f} of {s}" for f, s in zip(summary.failed, summary.seeds)]
    table = pd.DataFrame(columns)
    return table.loc[:, [c for c in table if not (table[c].astype(str).isin(["—", "nan"])).all()]]


def difference_matrix(pairs: pd.DataFrame, names, alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Row − column mean paired difference in points, and its labels with * where Holm p < alpha."""
    diff = pairs.pivot(index="a", columns="b", values="diff") * 100
    diff = diff.combine_first(-diff.T).reindex(index=names, columns=names)
    stars = pairs.assign(star=np.where(pairs.p_holm < alpha, "*", "")).pivot(index="a", columns="b", values="star")
    stars = stars.combine_first(stars.T).reindex(index=names, columns=names).fillna("")
    labels = diff.map(lambda v: "" if np.isnan(v) else number(v)) + stars
    return diff, labels.reindex(index=names, columns=names)  # + aligns and may reorder


def best_versus_worst(stops: pd.DataFrame, pairs: pd.DataFrame, round_: int) -> dict:
    """The most and least accurate initializers' tickets at one round and their paired difference (points)."""
    at = stops[(stops["round"] == round_) & (stops.condition == "ticket")].set_index("seed")
    ranked = at.groupby("init").test_acc.mean().sort_values()
    best, worst = ranked.index[-1], ranked.index[0]
    compared = stats.paired_comparison(at[at.init == best].test_acc * 100, at[at.init == worst].test_acc * 100)
    p_holm = pairs[pairs[["a", "b"]].apply(set, axis=1) == {best, worst}].p_holm.iloc[0]
    return dict(best=best, worst=worst, best_acc=f"{ranked[best] * 100:.1f}", worst_acc=f"{ranked[worst] * 100:.1f}",
                best_minus_worst=with_ci(compared["diff"], compared["low"], compared["high"]),
                best_minus_worst_p=f"{p_holm:.2g}")


def sameness_values(pairs: pd.DataFrame, prefix: str = "") -> dict:
    """How alike a set of schemes is, by the bound fixed before looking (stats.EQUIVALENCE_MARGIN):
    pairs shown equivalent by TOST, the widest paired 95% interval bound, and pairs that differ at 5%
    without and with Holm's correction (differences, not sameness)."""
    widest = np.nanmax(np.abs(pairs[["low", "high"]].to_numpy())) * 100 if len(pairs) else np.nan
    return {f"{prefix}pairs": len(pairs), f"{prefix}equivalent_pairs": int(pairs.equivalent.sum()),
            f"{prefix}widest_bound": f"{widest:.1f}", f"{prefix}uncorrected_pairs": int((pairs.p < 0.05).sum()),
            f"{prefix}significant_pairs": int((pairs.p_holm < 0.05).sum()),
            "margin": f"{stats.EQUIVALENCE_MARGIN * 100:.1f}"}


def overlap_values(overlap: pd.DataFrame, chance: float) -> dict:
    """Mean Jaccard between initializers (off-diagonal), between seeds (diagonal), and by chance."""
    between_inits = overlap.values[~np.eye(len(overlap), dtype=bool)]
    return dict(jaccard_inits=f"{np.nanmean(between_inits):.2f}",
                jaccard_seeds=f"{np.nanmean(np.diag(overlap)):.2f}", jaccard_chance=f"{chance:.2f}")


def dense_table(stops: pd.DataFrame) -> pd.DataFrame:
    """Dense networks (round 0): test accuracy and iteration at the early stop, per initializer."""
    rows = []
    for name in ordered(stops.init):
        group = stops[(stops.init == name) & (stops["round"] == 0)]
        rows.append({"initializer": name,
                     "test accuracy at early stop (%)": with_ci(*stats.mean_ci(group.test_acc * 100)),
                     "early-stop iteration": with_ci(*stats.mean_ci(group.iteration.dropna()), digits=0)})
    return pd.DataFrame(rows)


def levels_table(accuracy: pd.DataFrame, most: int = 7) -> pd.DataFrame:
    """Mean accuracy per initializer at up to `most` evenly spaced rounds, the sparsest included."""
    last = int(accuracy["round"].max())
    shown = sorted({*range(0, last + 1, -(-last // (most - 1)) or 1), last})
    table = (accuracy[accuracy["round"].isin(shown)].pivot(index="init", columns="weights_remaining", values="mean")
             .round(1).sort_index(axis=1, ascending=False).reindex(ordered(accuracy.init)))
    table.columns = [f"{p:.1f}%" for p in table.columns]
    return table.rename_axis("initializer").reset_index()


def imp_values(table: pd.DataFrame, accuracy: pd.DataFrame) -> dict:
    """The grid's settings, the percent of run-rounds whose early stop came before the budget's end,
    and the best and worst initializer, dense and at the sparsest level."""
    config = table.iloc[0]
    stops = table[table.is_early_stop.astype(bool)]
    values = dict(seeds=table.seed.nunique(), schemes=", ".join(ordered(table.init)), scheme_count=table.init.nunique(),
                  rounds=int(table["round"].max()) + 1,
                  iterations=f"{int(table.iteration.max()):,}", sparsest=f"{accuracy.weights_remaining.min():.1f}",
                  eval_every="—" if pd.isna(config.get("eval_every")) else int(config["eval_every"]),
                  stopped_early=f"{(stops.iteration < table.iteration.max()).mean() * 100:.0f}")  # % of run-rounds
    for label, r in (("dense", 0), ("last", accuracy["round"].max())):
        means = accuracy[accuracy["round"] == r].set_index("init")["mean"]
        values |= {f"{label}.best": means.idxmax(), f"{label}.best_acc": f"{means.max():.1f}",
                   f"{label}.worst": means.idxmin(), f"{label}.worst_acc": f"{means.min():.1f}"}
    return values


def gap_cell(g) -> str:
    """A control gap in points with its interval, '≈' where equivalent within the margin."""
    return with_ci(g.gap * 100, g.low * 100, g.high * 100) + (" ≈" if g.equivalent else "")


def controls_table(accuracy: pd.DataFrame, gaps: pd.DataFrame) -> pd.DataFrame:
    """At the sparsest level: mean accuracy per initializer and condition, and the ticket's paired
    gap over each control ('≈': equivalent within the margin)."""
    last = accuracy[accuracy["round"] == accuracy["round"].max()]
    table = last.pivot(index="init", columns="condition", values="mean").round(1)
    table = table[[c for c in CONDITIONS if c in table]].reindex(ordered(last.init))
    for control, group in gaps[gaps.init != "all"].groupby("control"):
        cells = group.set_index("init").apply(gap_cell, axis=1)
        table[f"ticket − {control} (points)"] = cells
    return table.rename_axis("initializer").reset_index().rename(columns=lambda c: c.replace("_", " "))  # headers can wrap


def fan_scaled(names) -> list[str]:
    """The schemes that scale their weights by the layer's fan (all but N(0, 1) and U(0, 1))."""
    return [n for n in names if n not in UNSCALED]


def controls_values(stops: pd.DataFrame, gaps: pd.DataFrame) -> dict:
    """The ticket's mean gap to each control at the last round over all schemes (`gaps`' 'all' rows)
    and over the fan-scaled ones (`scaled_*`), each seed's mean over schemes with a t interval;
    and per scheme (`INIT.ticket_minus_CONTROL`)."""
    last = int(stops["round"].max())
    scaled = stats.control_gaps(stops[stops.init.isin(fan_scaled(stops.init.unique()))], last)
    values = dict(sparsest=f"{stops[stops['round'] == last].weights_remaining.iloc[0]:.1f}",
                  seeds=stops.seed.nunique())
    for prefix, table in (("", gaps), ("scaled_", scaled)):
        for control, row in table[table.init == "all"].set_index("control").iterrows():
            values[f"{prefix}ticket_minus_{control}"] = gap_cell(row)
    for _, row in gaps[gaps.init != "all"].iterrows():
        values[f"{row.init}.ticket_minus_{row.control}"] = gap_cell(row)
    at = stops[stops["round"] == last]
    for (init, condition), acc in at.groupby(["init", "condition"]).test_acc:  # each condition's mean accuracy
        values[f"{init}.{condition}"] = f"{acc.mean() * 100:.1f}"
    return values


def shape_differences(stops: pd.DataFrame, round_: int, names: list) -> pd.DataFrame:
    """names[0] − names[1] per scale at one round, paired by seed, in points: mean, low, high."""
    wide = stops[stops["round"] == round_].pivot_table(index=["scale", "seed"], columns="init", values="test_acc")
    d = ((wide[names[0]] - wide[names[1]]) * 100).dropna()
    return pd.DataFrame([dict(scale=scale, **dict(zip(("mean", "low", "high"), stats.mean_ci(g))))
                         for scale, g in d.groupby("scale")])


def scale_table(accuracy: pd.DataFrame, round_: int, stops: pd.DataFrame | None = None) -> pd.DataFrame:
    """Accuracy per scale and scheme at one round; with two schemes and `stops`, their paired
    difference per scale (a shape × scale interaction shows here, not in the mean over scales)."""
    at = accuracy[accuracy["round"] == round_]
    cells = at.assign(accuracy=[with_ci(*r) for r in at[["mean", "low", "high"]].values])
    names = ordered(at.init)
    table = cells.pivot(index="scale", columns="init", values="accuracy")[names].reset_index()
    if stops is not None and len(names) == 2:
        d = shape_differences(stops, round_, names).set_index("scale")
        table[f"{names[0]} − {names[1]} (points)"] = [with_ci(*d.loc[s]) for s in table.scale]
    return table


def scale_values(stops: pd.DataFrame, accuracy: pd.DataFrame, round_: int) -> dict:
    """Best scale and spread per scheme at one round; with two schemes, their paired difference
    (each seed's mean over scales, so seeds stay the unit)."""
    at = accuracy[accuracy["round"] == round_]
    names = ordered(at.init)
    values = {"sparsest": f"{at.weights_remaining.iloc[0]:.1f}", "schemes": " and ".join(names),
              "scales": ", ".join(f"{s:g}" for s in sorted(at.scale.unique())),
              "seeds": int(stops.seed.nunique())}
    for name in names:
        means = at[at.init == name].set_index("scale")["mean"]
        values[f"best_scale.{name}"] = f"{means.idxmax():g}"
        values[f"range.{name}"] = f"{means.max() - means.min():.1f}"
    if len(names) == 2:
        wide = stops[stops["round"] == round_].pivot_table(index=["seed", "scale"], columns="init", values="test_acc")
        per_seed = (wide[names[0]] - wide[names[1]]).groupby("seed").mean() * 100
        values["shape_diff"] = with_ci(*stats.mean_ci(per_seed))
        for row in shape_differences(stops, round_, names).itertuples():
            values[f"shape_diff_at.{row.scale:g}"] = with_ci(row.mean, row.low, row.high)
    return values


def pairs_among(pairs: pd.DataFrame, names) -> pd.DataFrame:
    """The rows of pairwise_comparisons whose two schemes are both in `names` (Holm's adjustment
    stays the one over all pairs)."""
    return pairs[pairs.a.isin(names) & pairs.b.isin(names)]


def summary_values(stops: pd.DataFrame, pairs: pd.DataFrame, overlap: pd.DataFrame, chance: float,
                   summary: pd.DataFrame) -> dict:
    """The sparsest level's best and worst scheme, the significant pairs (all, and among the schemes
    scaled by fan: `scaled_*`), their spread there, the ranges of their mean accuracy dense and at
    the sparsest level and of their matching levels, and mask overlaps; `summary` is initializer_summary's."""
    last = int(stops["round"].max())
    scaled = fan_scaled(stops.init.unique())
    among = pairs_among(pairs, scaled)
    means = stops[(stops["round"] == last) & stops.init.isin(scaled)].groupby("init").test_acc.mean() * 100
    dense = stops[(stops["round"] == 0) & stops.init.isin(scaled)].groupby("init").test_acc.mean() * 100
    matching = summary[summary.init.isin(scaled)].matching
    span = lambda values: f"{values.min():.1f}–{values.max():.1f}"
    return {"sparsest": f"{stops[stops['round'] == last].weights_remaining.iloc[0]:.1f}",
            "seeds": stops.seed.nunique(), **best_versus_worst(stops, pairs, last),
            **sameness_values(pairs), **sameness_values(among, "scaled_"),
            "scaled_count": len(scaled), "scaled_spread": f"{means.max() - means.min():.1f}",
            "scaled_best": means.idxmax(), "scaled_worst": means.idxmin(),
            "scaled_dense_acc": span(dense), "scaled_sparsest_acc": span(means),
            "scaled_matching": "–".join(f"{v:.1f}" for v in sorted({matching.min(), matching.max()})),
            **overlap_values(overlap, chance)}


UNSCALED, KAIMING, XAVIER = FAMILIES["unscaled: N(0, 1), U(0, 1)"], FAMILIES["Kaiming (He)"], FAMILIES["Xavier (Glorot)"]
XAVIER_HALF = ["xavier_normal_half", "xavier_uniform_half"]
FOUR_2020 = ["xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform"]  # "all four methods"
CLAIMS_2020 = {  # the 2020 report's conclusions as paired differences, mean of group a − mean of group b
    # per seed, at the levels where the report made them: "alike" about 3.5%, its finer rankings
    # below that ("below" about 2.8%, "best" about 2.3%)
    "unscaled": ("N(0, 1), U(0, 1) − the fan-scaled schemes", UNSCALED, KAIMING + XAVIER, ("alike",)),
    "xavier_kaiming": ("Xavier beats Kaiming", ["xavier_normal", "xavier_uniform"], KAIMING,
                       ("alike", "below", "best")),
    "narrow_wide": ("narrower beats wider (Xavier ½ − ×2)", XAVIER_HALF,
                    ["xavier_normal_double", "xavier_uniform_double"], ("alike", "below", "best")),
    "normal_uniform": ("normal ≈ uniform (normal − uniform)",
                       ["kaiming_normal", "xavier_normal", "xavier_normal_half", "xavier_normal_double"],
                       ["kaiming_uniform", "xavier_uniform", "xavier_uniform_half", "xavier_uniform_double"],
                       ("alike",)),
    "half_best": ("Xavier ½ best (Xavier ½ − the other Xavier schemes)", XAVIER_HALF,
                  [n for n in XAVIER if n not in XAVIER_HALF], ("best",)),
}
LEVELS_2020 = {"alike": 3.5, "below": 2.8, "best": 2.3}


def paired_claim(stops: pd.DataFrame, round_: int, a: list, b: list, metric: str) -> str:
    """Mean of group a − mean of group b, per seed, then over seeds with its t interval, in points."""
    wide = stops[stops["round"] == round_].pivot_table(index="seed", columns="init", values=metric)
    per_seed = (wide[[n for n in a if n in wide]].mean(axis=1) - wide[[n for n in b if n in wide]].mean(axis=1)) * 100
    return with_ci(*stats.mean_ci(per_seed.dropna()))


def claims_2020(protocols: dict, levels: dict = LEVELS_2020) -> pd.DataFrame:
    """The 2020 report's conclusions measured under each protocol, one row per (claim, protocol):
    `protocols` maps a key to (column label, early-stop rows, metric). At the level nearest
    levels['alike'], the spread of the means of "all four methods" (Xavier and Kaiming, normal and
    uniform, what the report called alike) and of all schemes, with the pairs that differ after
    Holm's correction and those equivalent within ±EQUIVALENCE_MARGIN (TOST); the paired
    differences of CLAIMS_2020 at each of their levels (the claim key for the first, CLAIM_LEVEL for
    the others); the best scheme near levels['best']."""
    rows = []
    for key, (label, stops, metric) in protocols.items():
        rounds = {name: stats.nearest_round(stops, percent) for name, percent in levels.items()}
        level = {name: stops[stops["round"] == r].weights_remaining.iloc[0] for name, r in rounds.items()}
        at_alike = stops[stops["round"] == rounds["alike"]]
        found, equivalent = {}, {}
        for claim, schemes, words in (("four_alike", FOUR_2020, "Xavier and Kaiming (four schemes) alike"),
                                      ("alike", sorted(at_alike.init.unique()), "all schemes alike")):
            chosen = at_alike[at_alike.init.isin(schemes)]
            means = chosen.groupby("init")[metric].mean() * 100
            pairs = stats.pairwise_comparisons(chosen, rounds["alike"], metric)
            found[claim] = (f"{words} at {level['alike']:.1f}%: spread of means (points)",
                            f"{means.max() - means.min():.1f} ({int((pairs.p_holm < 0.05).sum())} of {len(pairs)} "
                            f"pairs differ, {int(pairs.equivalent.sum())} equivalent within "
                            f"±{stats.EQUIVALENCE_MARGIN * 100:g})")
            equivalent[claim] = f"{int(pairs.equivalent.sum())} of {len(pairs)}"
        for claim, (words, a, b, ats) in CLAIMS_2020.items():
            for i, at in enumerate(ats):
                found[claim if i == 0 else f"{claim}_{at}"] = (f"{words} at {level[at]:.1f}% (points)",
                                                              paired_claim(stops, rounds[at], a, b, metric))
        best_means = stops[stops["round"] == rounds["best"]].groupby("init")[metric].mean() * 100
        found["best"] = (f"best scheme at {level['best']:.1f}%", f"{best_means.idxmax()} ({best_means.max():.1f}%)")
        rows += [dict(claim=claim, conclusion=words, protocol=key, label=label, measured=text,
                      equivalent=equivalent.get(claim)) for claim, (words, text) in found.items()]
    return pd.DataFrame(rows)


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """claims_2020's rows as a table: a conclusion per row, a protocol per column."""
    table = claims.pivot(index="conclusion", columns="label", values="measured")
    return (table.loc[claims.conclusion.unique(), claims.label.unique()]
            .rename_axis("the 2020 report's conclusion").reset_index().rename_axis(columns=None))


def claims_values(claims: pd.DataFrame) -> dict:
    """claims_2020's rows as values keyed CLAIM.PROTOCOL, and the equivalent pairs of the spreads as
    CLAIM_equivalent.PROTOCOL ('5 of 6')."""
    return {**{f"{row.claim}.{row.protocol}": row.measured for row in claims.itertuples()},
            **{f"{row.claim}_equivalent.{row.protocol}": row.equivalent for row in claims.itertuples() if row.equivalent}}


def budget_label(iterations) -> str:
    return f"{int(iterations):,} iterations"


def with_budget(tables: list) -> pd.DataFrame:
    """Early-stop rows of grids that differ in the iterations a round trains, as one table whose
    `budget` column ('5,000 iterations') replaces the config's `iterations`."""
    return pd.concat([t.assign(budget=t.iterations.map(budget_label)).drop(columns="iterations") for t in tables],
                     ignore_index=True)


def budget_table(stops: pd.DataFrame, accuracy: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per initializer: test accuracy at early stop dense and at the sparsest level both budgets reach,
    per budget; the long − short difference paired by seed; and each budget's censored run-rounds."""
    budgets = sorted(stops.budget.unique(), key=lambda b: int(b.split()[0].replace(",", "")))
    short, long = budgets[0], budgets[-1]
    last = int(stops.groupby("budget")["round"].max().min())
    level = stops[stops["round"] == last].weights_remaining.iloc[0]
    diffs = stats.paired_differences(stops[stops["round"].isin([0, last])], "budget", long, short)
    censored = stats.censoring(stops, by=("init", "budget")).set_index(["init", "budget"])
    rows, values = [], {}
    for init in ordered(stops.init):
        row = {"initializer": init}
        for r, label in ((0, "dense"), (last, f"{level:.1f}%")):
            at = accuracy[(accuracy.init == init) & (accuracy["round"] == r)].set_index("budget")
            row[f"{label}: {short.split()[0]} → {long.split()[0]} it. (%)"] = \
                f"{at.loc[short, 'mean']:.1f} → {at.loc[long, 'mean']:.1f}"
            d = diffs[(diffs.init == init) & (diffs["round"] == r)].iloc[0]
            row[f"{label}: gain (points)"] = with_ci(d["diff"] * 100, d.low * 100, d.high * 100)
            key = "dense" if r == 0 else "sparsest"
            values[f"{init}.{key}_short"] = f"{at.loc[short, 'mean']:.1f}"
            values[f"{init}.{key}_long"] = f"{at.loc[long, 'mean']:.1f}"
            values[f"{init}.{key}_gain"] = with_ci(d["diff"] * 100, d.low * 100, d.high * 100)
        counts = []
        for budget in (short, long):
            c = censored.loc[(init, budget)]
            counts.append(f"{int(c.censored)}")
            values[f"{init}.censored_{'short' if budget == short else 'long'}"] = f"{c.percent:.0f}"
        row[f"early stop at the budget's end (of {int(c.run_rounds)})"] = " → ".join(counts)
        rows.append(row)
    values |= dict(level=f"{level:.1f}", rounds=last + 1, seeds=int(stops.seed.nunique()))
    return pd.DataFrame(rows), values


def scale_sweep(stops: pd.DataFrame, other: pd.DataFrame, inits: list) -> pd.DataFrame:
    """`inits`' early-stop rows across two grids that sweep their scale: `other`'s scales as it has
    them, `stops`'s where `other` lacks the scale (a run in both is taken once, from `other`)."""
    theirs = other[other.init.isin(inits)]
    mine = stops[stops.init.isin(inits) & ~stops.scale.isin(set(theirs.scale))]
    rounds = min(int(theirs["round"].max()), int(mine["round"].max()))
    both = pd.concat([theirs, mine], ignore_index=True)
    return both[both["round"] <= rounds][[c for c in both.columns if both[c].notna().any()]]


def paired_cell(d) -> str:
    return with_ci(d["diff"] * 100, d.low * 100, d.high * 100) + (" ≈" if d.equivalent else "")


def factors_table(stops: pd.DataFrame, sweep: pd.DataFrame, pooled: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """The factor sweeps at the dense and sparsest levels: per σ (fan-free normal and zero-mean
    uniform) and per multiple of Xavier's scale, each shape's accuracy and normal − uniform paired by
    seed ('≈': equivalent within the margin, TOST); then the values the paper quotes. The best σ is
    chosen from `stops`; its comparison with Xavier normal is made over `pooled`, `stops` with
    further seeds (default: `stops`), and also given over those further seeds alone."""
    pooled = stops if pooled is None else pooled
    last = int(stops["round"].max())
    level = stops[stops["round"] == last].weights_remaining.iloc[0]
    rows = []
    for family, normal, uniform, table in (("σ", "normal", "uniform_symmetric", stops),
                                           ("× Xavier", "xavier_normal", "xavier_uniform", sweep)):
        pair = table[table.init.isin([normal, uniform]) & table["round"].isin([0, last])]
        diffs = stats.paired_differences(pair, "init", normal, uniform, by=("scale", "round"))
        means = pair.groupby(["init", "scale", "round"]).test_acc.mean() * 100
        for scale in sorted(pair.scale.unique()):
            row = {"sweep": family, "value": f"{scale:g}"}
            for r, label in ((0, "dense"), (last, f"{level:.1f}%")):
                row[f"normal, {label}"] = f"{means.get((normal, scale, r), float('nan')):.1f}"
                row[f"uniform, {label}"] = f"{means.get((uniform, scale, r), float('nan')):.1f}"
            d = diffs[(diffs.scale == scale) & (diffs["round"] == last)]
            row[f"normal − uniform at {level:.1f}% (points)"] = paired_cell(d.iloc[0]) if len(d) else "—"
            rows.append(row)
    values = dict(level=f"{level:.1f}", seeds=int(stops.seed.nunique()), margin=f"{stats.EQUIVALENCE_MARGIN * 100:g}")
    at = stops[stops["round"] == last]
    sigma = at[at.init == "normal"].groupby("scale").test_acc.mean()
    best = float(sigma.idxmax())
    values |= dict(best_sigma=f"{best:g}", best_sigma_acc=f"{sigma.max() * 100:.1f}")
    for r, label in ((0, "dense"), (last, "sparsest")):
        values[f"xavier_normal.{label}"] = f"{stops[(stops.init == 'xavier_normal') & (stops.scale == 1.0) & (stops['round'] == r)].test_acc.mean() * 100:.1f}"
    held_out = sorted(set(pooled.seed) - set(stops.seed))
    for name, table, sigma in (("best_sigma", pooled, best), ("unit_sigma", stops, 1.0)):
        reference = table[(table.init == "xavier_normal") & (table.scale == 1.0)]
        both = pd.concat([table[(table.init == "normal") & (table.scale == sigma)].assign(arm="a"), reference.assign(arm="b")])
        for r, label in ((0, "dense"), (last, "sparsest")):
            d = stats.paired_differences(both[both["round"] == r], "arm", "a", "b", by=("round",)).iloc[0]
            values[f"{name}_minus_xavier.{label}"] = paired_cell(d)
            if name == "best_sigma" and held_out:  # the seeds that played no part in choosing σ
                fresh = both[(both["round"] == r) & both.seed.isin(held_out)]
                values[f"best_sigma_minus_xavier.held_out.{label}"] = number(
                    stats.paired_differences(fresh, "arm", "a", "b", by=("round",)).iloc[0]["diff"] * 100, 2)
        values[f"{name}_minus_xavier.seeds"] = int(d.seeds)
    mean = stops[stops.init.isin(["uniform", "uniform_centered"])]
    for r, label in ((0, "dense"), (last, "sparsest")):
        d = stats.paired_differences(mean[mean["round"] == r], "init", "uniform_centered", "uniform", by=("round",)).iloc[0]
        values[f"centered_minus_uniform.{label}"] = paired_cell(d)
        for init in ("uniform", "uniform_centered"):
            values[f"{init}.{label}"] = f"{mean[(mean.init == init) & (mean['round'] == r)].test_acc.mean() * 100:.1f}"
    return pd.DataFrame(rows), values


def with_setting(stops: pd.DataFrame) -> pd.DataFrame:
    """Early-stop rows with `setting`, the learning-rate rule and lr as one label ('lr 0.0012',
    'relative rule, base lr 0.0012'), and `scheme`, the init with its scale where it is not 1 ('xavier_normal 4×')."""
    rule = stops["lr_rule"].fillna("constant") if "lr_rule" in stops else pd.Series("constant", index=stops.index)
    setting = [f"{'relative rule, base ' if r == 'relative' else ''}lr {lr:g}" for r, lr in zip(rule, stops.lr)]
    scheme = [init if scale == 1 else f"{init} {scale:g}×" for init, scale in zip(stops.init, stops.scale)]
    return stops.assign(setting=setting, scheme=scheme).drop(columns=[c for c in ("lr", "lr_rule") if c in stops])


def setting_key(scheme: str, setting: str) -> str:
    """A value name for the paper: 'xavier_normal 4×', 'relative rule, base lr 0.0012' → 'xavier_normal_4x.relative_rule_base_lr_0.0012'."""
    return f"{scheme.replace(' ', '_').replace('×', 'x')}.{setting.replace(', ', '_').replace(' ', '_')}"


def lr_table(stops: pd.DataFrame, pooled: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Per scheme and learning-rate setting: test accuracy at early stop dense and at the sparsest
    level (mean [95% t]), censored run-rounds; each setting against lr 0.0012 at the sparsest level,
    paired by seed over `pooled` (`stops` with further seeds; default `stops`), naming the seeds
    where that pairs more than `stops` has."""
    pooled = stops if pooled is None else pooled
    last = int(stops["round"].max())
    level = stops[stops["round"] == last].weights_remaining.iloc[0]
    censored = stats.censoring(stops, by=("scheme", "setting")).set_index(["scheme", "setting"])
    seeds = stops.seed.nunique()
    rows, values = [], dict(level=f"{level:.1f}", seeds=int(seeds))
    schemes = sorted(stops.scheme.unique(), key=lambda s: (ordered(stops.init).index(s.split()[0]), s))
    settings = sorted(stops.setting.unique(), key=lambda s: (s.startswith("relative"), float(s.split()[-1])))
    for scheme in schemes:
        mine = stops[stops.scheme == scheme]
        base = "lr 0.0012"
        for setting in settings:
            runs = mine[mine.setting == setting]
            if runs.empty:
                continue
            row = {"scheme": scheme, "learning rate": setting}
            for r, label in ((0, "dense"), (last, f"{level:.1f}%")):
                row[f"{label} (%)"] = with_ci(*stats.mean_ci(runs[runs["round"] == r].test_acc * 100))
            c = censored.loc[(scheme, setting)]
            row["censored run-rounds"] = f"{int(c.censored)} of {int(c.run_rounds)}"
            if setting != base:
                theirs = pooled[(pooled.scheme == scheme) & (pooled["round"] == last)]
                d = stats.paired_differences(theirs, "setting", setting, base, by=("round",))
                cell = paired_cell(d.iloc[0]) if len(d) else "—"
                values[f"{setting_key(scheme, setting)}.gain"] = cell
                if len(d) and d.iloc[0].seeds != seeds:
                    values[f"{setting_key(scheme, setting)}.gain_seeds"] = int(d.iloc[0].seeds)
                    cell += f" ({d.iloc[0].seeds} seeds)"
                row[f"− lr 0.0012 at {level:.1f}% (points)"] = cell
            else:
                row[f"− lr 0.0012 at {level:.1f}% (points)"] = ""
            key = setting_key(scheme, setting)
            for r, label in ((0, "dense"), (last, "sparsest")):
                values[f"{key}.{label}"] = f"{runs[runs['round'] == r].test_acc.mean() * 100:.1f}"
            rows.append(row)
    return pd.DataFrame(rows), values


SOURCES = {"draw": "draw of θ0", "order": "data order", "residual": "interaction and noise"}


def components_long(parts: pd.DataFrame) -> pd.DataFrame:
    """variance_components as lines to plot: per init, round and source, its SD in points (no band)."""
    rows = [dict(init=p.init, round=p.round, weights_remaining=p.weights_remaining, source=label,
                 mean=getattr(p, f"sd_{key}") * 100, low=getattr(p, f"sd_{key}") * 100, high=getattr(p, f"sd_{key}") * 100)
            for p in parts.itertuples() for key, label in SOURCES.items()]
    return pd.DataFrame(rows)


def components_table(parts: pd.DataFrame, most: int = 4) -> tuple[pd.DataFrame, dict]:
    """The components at up to `most` evenly spaced rounds (dense and sparsest included): SD in
    points and share of the variance per source; values: each source's mean share over rounds."""
    last = int(parts["round"].max())
    shown = sorted({*range(0, last + 1, max(1, -(-last // (most - 1)))), last})
    rows = []
    for p in parts[parts["round"].isin(shown)].itertuples():
        row = {"initializer": p.init, "weights remaining (%)": f"{p.weights_remaining:.1f}"}
        for key, label in SOURCES.items():
            row[f"{label}: SD (share)"] = f"{getattr(p, f'sd_{key}') * 100:.2f} ({getattr(p, f'share_{key}'):.0%})"
        row["p (draw, order)"] = f"{p.p_draw:.3f}, {p.p_order:.3f}"
        rows.append(row)
    values = {}
    for init, group in parts.groupby("init"):
        for key in SOURCES:
            values[f"{init}.share_{key}"] = f"{group[f'share_{key}'].mean():.0%}"
            values[f"{init}.sd_{key}"] = f"{(group[f'sd_{key}'] ** 2).mean() ** 0.5 * 100:.2f}"
        values[f"{init}.levels"] = len(group)
        values[f"{init}.draw_effects"] = int((group.p_draw < 0.05).sum())  # levels with a draw effect at 5%
        values[f"{init}.order_effects"] = int((group.p_order < 0.05).sum())
    return pd.DataFrame(rows), values


def barrier_ci(barriers) -> tuple:
    """stats.mean_ci of error barriers with its low end cut at 0: a barrier is never negative (the
    path's maximum includes its ends)."""
    mean, low, high = stats.mean_ci(barriers)
    return mean, max(low, 0.0), high


def rewind_label(k) -> str:
    return "θ0 (k = 0)" if k == 0 else f"k = {int(k):,}"


def rewind_order(label: str) -> int:
    return 0 if label.startswith("θ0") else int(label.split("= ")[1].replace(",", ""))


def late_rewind_gains(tickets: pd.DataFrame) -> pd.DataFrame:
    """Tickets rewound to each later iteration k minus those rewound to θ0, paired by seed: (k,
    round, 'diff [low, high]' and the mean alone, in points) at every round both have."""
    rows = []
    for k in sorted(tickets.rewind_iteration.unique()):
        if k == 0:
            continue
        d = stats.paired_differences(tickets, "k", rewind_label(k), rewind_label(0), by=("round",))
        rows += [(int(k), int(row["round"]), with_ci(row["diff"] * 100, row["low"] * 100, row["high"] * 100), row["diff"] * 100)
                 for _, row in d.iterrows()]
    return pd.DataFrame(rows, columns=["k", "round", "diff", "mean"])


def instability_table(barriers: pd.DataFrame, tickets: pd.DataFrame, most: int = 4) -> tuple[pd.DataFrame, dict]:
    """Per initializer and rewind point, at up to `most` levels: the error barrier (points, mean
    [95% t] over seeds) and the tickets' test accuracy; the first k whose mean barrier is under
    stats.STABLE at each shown level; values: the barrier at k = 0 dense and at the sparsest level,
    each later k's tickets and their paired gain over θ0's at the shown levels
    (`INIT.kK.ticket_LEVEL`, `INIT.kK.minus_k0_LEVEL`) with the range of the fan-scaled schemes'
    mean gains at the sparsest level (`scaled.kK.minus_k0_sparsest_low`, `_high`), the largest mean
    barrier at any level and the largest upper interval end (barrier_ci's intervals), rewound to θ0
    and (`late_`) to any later k."""

    last = int(barriers["round"].max())
    shown = sorted({*range(0, last + 1, max(1, -(-last // (most - 1)))), last})
    level = barriers.groupby("round").weights_remaining.first()
    stable = stats.first_stable(barriers[barriers["round"].isin(shown)], by=("init", "round"))
    rows, scaled_gains, values = [], [], dict(stable=f"{stats.STABLE * 100:g}", sparsest=f"{level[last]:.1f}",
                            seeds=int(barriers.seed.nunique()))
    for rewound, prefix in ((barriers.rewind_iteration == 0, ""), (barriers.rewind_iteration > 0, "late_")):
        if not rewound.any():
            continue
        means = barriers[rewound].groupby(["init", "k", "round"]).barrier.mean()
        largest_init, _, largest_round = means.idxmax()
        values |= {f"{prefix}largest_barrier": f"{means.max() * 100:.1f}", f"{prefix}largest_barrier_init": largest_init,
                   f"{prefix}largest_barrier_level": f"{level[largest_round]:.1f}"}  # the largest mean over seeds at any level
        upper = barriers[rewound].groupby(["init", "k", "round"]).barrier.apply(lambda b: stats.mean_ci(b * 100)[2])
        upper_init, _, upper_round = upper.idxmax()
        values |= {f"{prefix}largest_upper": f"{upper.max():.1f}", f"{prefix}largest_upper_init": upper_init,
                   f"{prefix}largest_upper_level": f"{level[upper_round]:.1f}"}
    for init in ordered(barriers.init):
        for k in sorted(barriers[barriers.init == init].k.unique(), key=rewind_order):
            row = {"initializer": init, "rewind": k}
            for r in shown:
                b = barriers[(barriers.init == init) & (barriers.k == k) & (barriers["round"] == r)].barrier * 100
                a = tickets[(tickets.init == init) & (tickets.k == k) & (tickets["round"] == r)].test_acc * 100
                row[f"{level[r]:.1f}%: barrier / accuracy"] = f"{with_ci(*barrier_ci(b))} / {a.mean():.1f}"
                if k.startswith("θ0") and r in (0, last):
                    values[f"{init}.barrier_{'dense' if r == 0 else 'sparsest'}"] = with_ci(*barrier_ci(b))
            rows.append(row)
        late = late_rewind_gains(tickets[tickets.init == init])
        if init not in UNSCALED:
            scaled_gains.append(late[late["round"] == last])
        for k, r, diff, _ in late[late["round"].isin(shown)].itertuples(index=False):
            place = "sparsest" if r == last else f"{level[r]:.1f}"
            values[f"{init}.k{k}.ticket_{place}"] = number(
                tickets[(tickets.init == init) & (tickets.k == rewind_label(k)) & (tickets["round"] == r)].test_acc.mean() * 100, 1)
            values[f"{init}.k{k}.minus_k0_{place}"] = diff
        for r in shown:
            first = stable[(stable.init == init) & (stable["round"] == r)].first_stable
            k_first = first.iloc[0] if len(first) else np.nan
            values[f"{init}.first_stable_{r}"] = "none" if pd.isna(k_first) else f"{int(k_first)}"
    if scaled_gains:
        for k, gains in pd.concat(scaled_gains).groupby("k")["mean"]:
            values[f"scaled.k{k}.minus_k0_sparsest_low"], values[f"scaled.k{k}.minus_k0_sparsest_high"] = (
                number(gains.min(), 1), number(gains.max(), 1))
    table = pd.DataFrame(rows)
    return (table.drop(columns="rewind") if table.rewind.nunique() == 1 else table), values  # one k: said in the caption


def best_at_init(at: pd.DataFrame) -> tuple[str, float, pd.Series]:
    """The pruning-at-initialization condition with the best mean test accuracy among the rows `at`
    (one round, the ticket beside the methods): its name, mean, and ticket − it paired by seed."""
    methods = at[at.condition != "ticket"].groupby("condition").test_acc.mean()
    best = methods.idxmax()
    return best, methods.max(), stats.paired_differences(at, "condition", "ticket", best, by=("round",)).iloc[0]


def pai_table(stops: pd.DataFrame, pooled: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Per initializer and masks (per layer: `stops`, at the ticket's count per layer; pooled: the
    `_global` conditions of another grid, each paired with its own grid's ticket), at a middle level
    and the sparsest: the ticket's accuracy, the best pruning-at-initialization condition (by mean)
    and the ticket − best gap paired by seed; values also each condition's mean accuracy
    (INIT.LEVEL.CONDITION), the pooled grid's as INIT.LEVEL.pooled_best/_best_acc/_gap/_ticket."""
    last = int(stops["round"].max())
    middle = stats.nearest_round(stops, 7.0)
    level = stops.groupby("round").weights_remaining.first()
    rows, values = [], dict(sparsest=f"{level[last]:.1f}", middle=f"{level[middle]:.1f}",
                            seeds=int(stops.seed.nunique()))
    scopes = [("per layer", "", stops)] + ([("pooled", "pooled_", pooled)] if pooled is not None else [])
    if pooled is not None:
        values["pooled_seeds"] = int(pooled.seed.nunique())
    for init in ordered(stops.init):
        for masks, prefix, frame in scopes:
            mine = frame[frame.init == init]
            row = {"initializer": init, "masks": masks}
            for r, label in ((middle, "middle"), (last, "sparsest")):
                at = mine[mine["round"] == r]
                best, best_acc, d = best_at_init(at)
                ticket = at[at.condition == "ticket"].test_acc.mean()
                row[f"{level[r]:.1f}%: ticket (%)"] = f"{ticket * 100:.1f}"
                row[f"{level[r]:.1f}%: best at init (%)"] = f"{best} {best_acc * 100:.1f}"
                row[f"{level[r]:.1f}%: ticket − best (points)"] = paired_cell(d)
                values |= {f"{init}.{label}.{prefix}best": best, f"{init}.{label}.{prefix}best_acc": f"{best_acc * 100:.1f}",
                           f"{init}.{label}.{prefix}gap": paired_cell(d), f"{init}.{label}.{prefix}ticket": f"{ticket * 100:.1f}"}
                values |= {f"{init}.{label}.{condition}": f"{acc * 100:.1f}"
                           for condition, acc in at.groupby("condition").test_acc.mean().items()
                           if not (prefix and condition == "ticket")}  # the ticket's value: the per-layer grid's
            rows.append(row)
    table = pd.DataFrame(rows)
    return (table if pooled is not None else table.drop(columns="masks")), values


def pai_layer_values(layers: pd.DataFrame) -> dict:
    """Where pruning at initialization puts the sparsity: at the sparsest round, the percent of each
    tensor's weights kept (mean over seeds) per init and condition, as INIT.sparsest.CONDITION.kept.TENSOR."""
    last = layers[layers["round"] == layers["round"].max()]
    kept = last.assign(tensor=last.tensor.str.removesuffix(".weight")).groupby(["init", "condition", "tensor"]).fraction.mean()
    return {f"{init}.sparsest.{condition}.kept.{tensor}": f"{share * 100:.1f}" for (init, condition, tensor), share in kept.items()}


def layer_fractions(layers: pd.DataFrame) -> pd.DataFrame:
    """Per init, tensor and round: the percent of the tensor's weights kept, mean [95% t] over seeds,
    with the run's overall weights remaining as the level (columns as over_seeds gives). A control's
    runs train their ticket's masks, so only the tickets' rows count."""
    if "condition" in layers:
        layers = layers[layers.condition == "ticket"]
    layers = layers.assign(percent=layers.fraction * 100, tensor=layers.tensor.str.removesuffix(".weight"))
    rows = []
    for (init, tensor, r), group in layers.groupby(["init", "tensor", "round"]):
        mean, low, high = stats.mean_ci(group.percent)
        rows.append(dict(init=init, tensor=tensor, round=r, weights_remaining=group.weights_remaining.iloc[0],
                         mean=mean, low=low, high=high, seeds=group.seed.nunique()))
    return pd.DataFrame(rows)


def layers_table(fractions: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Each init's percent kept per layer at the sparsest level; values: the spread of each layer's
    share over the fan-scaled schemes and each representative's first-layer share."""
    last = fractions[fractions["round"] == fractions["round"].max()]
    table = last.pivot(index="init", columns="tensor", values="mean").reindex(ordered(last.init)).round(1)
    values = dict(level=f"{last.weights_remaining.iloc[0]:.1f}")
    scaled = table.loc[[n for n in table.index if n not in UNSCALED]]
    for tensor in table.columns:
        values[f"{tensor}.scaled_low"], values[f"{tensor}.scaled_high"] = f"{scaled[tensor].min():.1f}", f"{scaled[tensor].max():.1f}"
        for init in table.index:
            values[f"{init}.{tensor}"] = f"{table.loc[init, tensor]:.1f}"
    return table.rename_axis("initializer").reset_index().rename_axis(None, axis=1), values


def global_arms(stops: pd.DataFrame, layerwise: pd.DataFrame) -> pd.DataFrame:
    """Early stops of a global-pruning grid labelled by `arm` ('global ticket', 'global reinit')
    beside the tickets of a layerwise grid of the same inits ('layerwise ticket'), without the
    columns that tell the two grids apart, so that each arm is one curve."""
    layerwise = layerwise[layerwise.init.isin(stops.init.unique()) & (layerwise.condition == "ticket")]
    arms = pd.concat([stops.assign(arm="global " + stops.condition), layerwise.assign(arm="layerwise ticket")])
    return arms.drop(columns=["condition", "prune_scope", "prune_rates"], errors="ignore")


def global_table(stops: pd.DataFrame, layerwise: pd.DataFrame, fractions: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Global against layerwise pruning at the sparsest round, per init: each layer's percent kept
    under global pruning (`fractions`, from layer_fractions), the global ticket's accuracy, its
    paired gap over the layerwise ticket of the same seed (`layerwise`: early stops of a layerwise
    grid of the same inits and seeds) and over its own reinitialization; then the values the paper quotes."""
    last = int(stops["round"].max())
    table, values = layers_table(fractions)
    table = table.set_index("initializer")
    arms = global_arms(stops, layerwise)
    both = arms[(arms["round"] == last) & arms.arm.isin(["global ticket", "layerwise ticket"])]
    versus_layerwise = stats.paired_differences(both, "arm", "global ticket", "layerwise ticket").set_index("init")
    versus_reinit = stats.paired_differences(stops[stops["round"] == last], "condition", "ticket", "reinit").set_index("init")
    means = both.groupby(["init", "arm"]).test_acc.mean() * 100
    for init in table.index:
        row = {"global ticket (%)": f"{means[(init, 'global ticket')]:.1f}",
               "layerwise ticket (%)": f"{means[(init, 'layerwise ticket')]:.1f}",
               "global − layerwise (points)": paired_cell(versus_layerwise.loc[init]),
               "ticket − reinit, global (points)": paired_cell(versus_reinit.loc[init])}
        for column, cell in row.items():
            table.loc[init, column] = cell
        values |= {f"{init}.global": row["global ticket (%)"], f"{init}.layerwise": row["layerwise ticket (%)"],
                   f"{init}.global_minus_layerwise": row["global − layerwise (points)"],
                   f"{init}.ticket_minus_reinit": row["ticket − reinit, global (points)"]}
    scaled = [init for init in table.index if init not in UNSCALED]
    gaps, gains = versus_layerwise.loc[scaled], versus_reinit.loc[scaled]
    values |= {"scaled.count": len(scaled), "scaled.equivalent": int(gaps.equivalent.sum()),
               "scaled.below": int((gaps.high < 0).sum()), "scaled.above": int((gaps.low > 0).sum()),
               "scaled.gap_low": number(gaps["diff"].min() * 100), "scaled.gap_high": number(gaps["diff"].max() * 100),
               "scaled.reinit_low": number(gains["diff"].min() * 100), "scaled.reinit_high": number(gains["diff"].max() * 100)}
    values |= dict(layerwise_level=f"{both[both.arm == 'layerwise ticket'].weights_remaining.iloc[0]:.1f}",
                   seeds=int(stops[stops.condition == "ticket"].seed.nunique()),
                   reinit_seeds=int(stops[stops.condition == "reinit"].seed.nunique()),
                   margin=f"{stats.EQUIVALENCE_MARGIN * 100:g}")
    return table.rename(columns=lambda c: f"{c} kept (%)" if c in fractions.tensor.unique() else c).reset_index(), values


def scorecard(tickets: pd.DataFrame, controls: pd.DataFrame, barriers: pd.DataFrame | None = None,
              pai: pd.DataFrame | None = None, pai_pooled: pd.DataFrame | None = None) -> pd.DataFrame:
    """Prune-readiness per initializer, each measure with its 95% t interval and seeds, from the
    early-stop rows of the main grid's `tickets`, a grid of tickets with their `controls` (reinit,
    random), instability `barriers` (stats.instability with `rewind_iteration`) and tickets beside
    pruning-at-initialization runs (`pai` per layer, `pai_pooled` pooled over layers: the gap is to the
    best method of either, paired with its own grid's ticket); measures a grid lacks are NaN. Numbers,
    not strings: a CSV for other tools (accuracies and gaps in points)."""
    tickets = tickets[tickets.condition == "ticket"]
    last = int(tickets["round"].max())
    area = stats.area_under_log_density(tickets).set_index("init")
    rows = []
    for init in ordered(tickets.init):
        mine = tickets[tickets.init == init]
        point, plausible, confirmed = stats.matching_range(mine)
        row = dict(initializer=init, seeds=mine.seed.nunique(),
                   dense=mine[mine["round"] == 0].test_acc.mean() * 100,
                   sparsest_level=mine[mine["round"] == last].weights_remaining.iloc[0],
                   sparsest=mine[mine["round"] == last].test_acc.mean() * 100,
                   matching=point, matching_not_ruled_out=plausible, matching_confirmed=confirmed,
                   area=area.loc[init, "mean"] * 100, area_low=area.loc[init, "low"] * 100,
                   area_high=area.loc[init, "high"] * 100)
        at = controls[(controls.init == init) & (controls["round"] == controls["round"].max())]
        for control in ("reinit", "random"):
            d = stats.paired_differences(at, "condition", "ticket", control, by=("round",))
            d = d.iloc[0] if len(d) else dict(diff=np.nan, low=np.nan, high=np.nan, seeds=0)
            row |= {f"ticket_minus_{control}": d["diff"] * 100, f"ticket_minus_{control}_low": d["low"] * 100,
                    f"ticket_minus_{control}_high": d["high"] * 100, f"ticket_minus_{control}_seeds": d["seeds"]}
        row["controls_level"] = at.weights_remaining.iloc[0] if len(at) else np.nan
        if barriers is not None and (b := barriers[barriers.init == init]).size:
            sparse = b[b["round"] == b["round"].max()]
            k0 = sparse[sparse.rewind_iteration == 0].barrier * 100
            row |= dict(zip(("barrier_k0", "barrier_k0_low", "barrier_k0_high"), barrier_ci(k0)))
            row["barrier_seeds"] = len(k0)
            if barriers.rewind_iteration.nunique() > 1:  # with θ0 alone, "none stable" would read as "not measured"
                first = stats.first_stable(sparse, by=("init", "round")).first_stable
                row["first_stable_k"] = first.iloc[0] if len(first) else np.nan
        families = [f[(f.init == init) & (f["round"] == f["round"].max())] for f in (pai, pai_pooled) if f is not None]
        if families := [f for f in families if f.size]:
            best, _, d = max(map(best_at_init, families), key=lambda found: found[1])
            row |= dict(pai_best=best, pai_gap=d["diff"] * 100, pai_gap_low=d["low"] * 100,
                        pai_gap_high=d["high"] * 100, pai_seeds=d["seeds"])
        rows.append(row)
    return pd.DataFrame(rows)


def scorecard_table(card: pd.DataFrame) -> pd.DataFrame:
    """The scorecard for the paper: 'mean [low, high]' cells, levels in the headers."""
    def cells(name):
        if name not in card:
            return ["—"] * len(card)
        return [with_ci(m, lo, hi) for m, lo, hi in card[[name, f"{name}_low", f"{name}_high"]].to_numpy()]
    level, controls = card.sparsest_level.iloc[0], card.controls_level.dropna()
    at = f" at {controls.iloc[0]:.1f}%" if len(controls) else ""
    table = pd.DataFrame({
        "initializer": card.initializer,
        "sparsest matching dense (%)": [matching_cell(m, level) for m in card.matching],
        "mean accuracy over log density (%)": cells("area"),
        f"ticket − reinit{at}": cells("ticket_minus_reinit"),
        f"ticket − random{at}": cells("ticket_minus_random"),
        f"barrier at θ0, {level:.1f}% (points)": cells("barrier_k0"),
        "first stable k": [("—" if np.isnan(k) else f"{int(k):,}") if "first_stable_k" in card else "—"
                           for k in card.get("first_stable_k", pd.Series(np.nan, index=card.index))],
        f"ticket − best pruning at init, {level:.1f}%": [
            cell if cell == "—" else f"{cell} ({best})"
            for cell, best in zip(cells("pai_gap"), card.get("pai_best", pd.Series("", index=card.index)))],
    })
    return table.loc[:, [c for c in table if not (table[c] == "—").all()]]  # what no grid measured


def diagnostics_long(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """The no-retrain diagnostics as lines: per measure × layer panel, init and round, the mean over
    seeds of kept ÷ pruned mean |θ0| and of the rank correlation, with 95% t intervals."""
    rows = []
    frame = diagnostics.assign(ratio=diagnostics.kept_abs_init / diagnostics.pruned_abs_init,
                               layer=diagnostics.tensor.str.removesuffix(".weight"))
    for (init, layer, r), group in frame.groupby(["init", "layer", "round"]):
        for measure, label in (("ratio", "kept ÷ pruned |θ0|"), ("rank_correlation", "rank correlation")):
            values = group[measure].dropna()
            if len(values):
                mean, low, high = stats.mean_ci(values)
                rows.append(dict(init=init, round=r, weights_remaining=group.weights_remaining.iloc[0],
                                 panel=f"{label} · {layer}", mean=mean, low=low, high=high))
    long = pd.DataFrame(rows)
    panels = sorted(long.panel.unique(), key=lambda p: (not p.startswith("kept"), p))
    return long.assign(panel=pd.Categorical(long.panel, panels, ordered=True)).sort_values("panel")


def diagnostics_table(diagnostics: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per initializer and layer, over all rounds and seeds: the mean kept ÷ pruned |θ0| ratio and
    rank correlation, and their values at the first and last pruning; values add the seeds."""
    frame = diagnostics.assign(ratio=diagnostics.kept_abs_init / diagnostics.pruned_abs_init,
                               layer=diagnostics.tensor.str.removesuffix(".weight"))
    first, last = int(frame["round"].min()), int(frame["round"].max())
    rows, values = [], {"seeds": int(frame.seed.nunique())}
    for init in ordered(frame.init):
        for layer, group in frame[frame.init == init].groupby("layer"):
            row = {"initializer": init, "layer": layer}
            for r, label in ((first, "first pruning"), (last, "last pruning")):
                at = group[group["round"] == r]
                row[f"kept ÷ pruned |θ0|, {label}"] = f"{at.ratio.mean():.2f}" if at.ratio.notna().any() else "—"
                row[f"rank corr., {label}"] = f"{at.rank_correlation.mean():.2f}" if at.rank_correlation.notna().any() else "—"
            values[f"{init}.{layer}.ratio"] = f"{group.ratio.mean():.2f}"
            values[f"{init}.{layer}.rank"] = f"{group.rank_correlation.mean():.2f}"
            rows.append(row)
    return pd.DataFrame(rows), values


def markdown_table(table) -> str:
    """A pandoc pipe table (no extra dependency); dash counts set pandoc's relative column widths."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    # widths from the cells and the header's longest word (a long header wraps, it does not widen the
    # column), plus the cell's padding, which a narrow column would otherwise lose to its neighbours
    widths = [max([*map(len, str(c).split()), *(len(str(v)) for v in table[c])]) for c in table.columns]
    rule = "|" + "|".join("-" * (max(3, w) + 2) for w in widths) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"
