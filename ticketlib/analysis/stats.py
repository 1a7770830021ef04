"""Statistics over seeds: intervals, matching-dense sparsity, paired comparisons, mask overlap.

Seeds are the unit of replication, and they are paired: every initializer, scale and condition
with seed s sees the same data order, so differences are taken within a seed and intervals are
over seeds. Intervals are Student-t (mean ± t·sd/√n), which keep their coverage at 3–10 seeds
(tests/test_stats.py checks it by simulation). A run that diverged is a failure, never dropped: at
its round and every later round it scores chance accuracy (`failed` True in `early_stops`).
Functions that assume one setup (every hyperparameter but the seed) refuse a table that mixes
several, naming the columns that differ.
"""
import itertools

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ticketlib.analysis.results import setup_columns
from ticketlib.errors import TicketError

LEVEL = 0.95
# Sameness is claimed only by equivalence within ±EQUIVALENCE_MARGIN accuracy points (TOST at 5%,
# i.e. the paired 90% t interval inside the margin). Fixed on 2026-12-06, before the factors and
# mechanism grids were looked at: half a point is below what a practitioner would choose an
# initializer for on MNIST and about three times the dense networks' seed-to-seed spread.
EQUIVALENCE_MARGIN = 0.005
# And only over SAMENESS_SEEDS paired seeds or more, the study's design where it claims sameness:
# TOST keeps its error rate at three, but a three-seed grid is neither designed nor powered to show it.
SAMENESS_SEEDS = 5
CHANCE = 0.1  # accuracy of a failed network: every registered dataset has 10 classes
PER_CURVE = ("init", "scale", "bias_init", "condition")  # what a figure's lines may differ in


def t_interval(values, level=LEVEL) -> tuple:
    """Student-t interval of the mean of `values` (NaN with fewer than two)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return (np.nan, np.nan)
    half = scipy_stats.t.ppf((1 + level) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return (values.mean() - half, values.mean() + half)


def mean_ci(values) -> tuple[float, float, float]:
    """Mean and its 95% Student-t interval."""
    values = np.asarray(values, dtype=float)
    return (values.mean() if len(values) else np.nan, *t_interval(values))


def one_setup(table: pd.DataFrame, varying=PER_CURVE) -> None:
    """Refuse a table whose runs differ in anything but the seed and the `varying` columns."""
    mixed = [c for c in setup_columns(table) if c not in varying and table[c].nunique(dropna=False) > 1]
    if mixed:
        raise TicketError(f"the table mixes setups that differ in {', '.join(mixed)}; select one "
                          f"(e.g. table[table.{mixed[0]} == {table[mixed[0]].iloc[0]!r}])")


def early_stops(table: pd.DataFrame, chance: float = CHANCE) -> pd.DataFrame:
    """One row per run × round: the evaluation at the early-stop iteration; where a run diverged, a
    failure row (`failed`, test accuracy `chance`, no iteration) at that round and at every later
    round that runs of its setup reached. `censored`: the early stop is the round's last evaluation,
    so the network was still improving when the budget ended."""
    last = table.groupby(["run_id", "round"]).iteration.transform("max")
    stops = table.assign(censored=table.iteration == last)[table.is_early_stop.astype(bool)].assign(failed=False)
    diverged = table[table.diverged.astype(bool)].drop_duplicates("run_id")
    if diverged.empty:
        return stops.reset_index(drop=True)
    shared = [c for c in setup_columns(table) if c not in PER_CURVE]  # decides the levels of each round
    levels = table.groupby([*shared, "round"], dropna=False).weights_remaining.first().reset_index()
    runs = diverged.drop(columns=["round", "weights_remaining"])
    failures = runs.merge(levels, on=shared, how="left") if shared else runs.merge(levels, how="cross")
    failures = failures[failures["round"] >= diverged.set_index("run_id")["round"].loc[failures.run_id].to_numpy()]
    failures = failures.assign(failed=True, censored=False, test_acc=chance, iteration=np.nan, val_loss=np.nan,
                               val_acc=np.nan)
    return pd.concat([stops, failures], ignore_index=True).sort_values(["run_id", "round"], ignore_index=True)


def over_seeds(rows: pd.DataFrame, metric: str, by: list) -> pd.DataFrame:
    """Mean of `metric` over seeds with its 95% t interval, the seeds and the failed ones, per group
    of `by`; the rows may differ in nothing else but the seed."""
    one_setup(rows, varying=[*by, metric])
    failed = rows.failed if "failed" in rows else pd.Series(False, index=rows.index)

    def describe(group):
        mean, low, high = mean_ci(group[metric].dropna())
        return pd.Series(dict(weights_remaining=group.weights_remaining.iloc[0], mean=mean, low=low, high=high,
                              seeds=group.seed.nunique(), failed=int(failed[group.index].sum())))
    return rows.groupby(by).apply(describe, include_groups=False).reset_index()


def by_level(stops: pd.DataFrame, metric: str, keys=("init", "condition")) -> pd.DataFrame:
    """Per key × round (early-stop rows): sparsity curves."""
    return over_seeds(stops, metric, [*keys, "round"])


def curve_by_iteration(rows: pd.DataFrame, metric: str, keys=("init",)) -> pd.DataFrame:
    """Per key × iteration (rows of one round): training curves."""
    return over_seeds(rows, metric, [*keys, "iteration"])


def dense_trains(dense_mean: float, chance: float = CHANCE) -> bool:
    """The rule for 'the dense network trains': its mean accuracy is at least halfway from chance to 100%."""
    return dense_mean >= (1 + chance) / 2


def matching_level(curve: pd.DataFrame, tolerance: float = 0.0, chance: float = CHANCE) -> float:
    """Smallest weights_remaining whose mean accuracy over seeds is ≥ the dense mean − tolerance;
    NaN (undefined) when the dense network does not train (`dense_trains`).

    `curve` holds one init's per-seed early-stop accuracies: columns seed, round,
    weights_remaining, test_acc (round 0 is dense). Levels are not required to match in an
    unbroken run: at the sparse end accuracy falls steadily, at the dense end it is noise.
    """
    means = curve.groupby("round").agg(p=("weights_remaining", "first"), acc=("test_acc", "mean"))
    dense = means.acc.loc[0]
    if not dense_trains(dense, chance):
        return np.nan
    return float(means.p[means.acc >= dense - tolerance].min())


def matching_range(curve: pd.DataFrame, tolerance: float = 0.0, chance: float = CHANCE) -> tuple:
    """matching_level and the range around it that seeds allow: the sparsest level whose paired
    difference from dense (by seed) has a 95% t interval reaching −tolerance (not ruled out), and
    the sparsest whose interval lies wholly above it (confirmed). (point, not ruled out, confirmed)."""
    point = matching_level(curve, tolerance, chance)
    acc = curve.pivot_table(index="seed", columns="round", values="test_acc")  # seeds × rounds
    if np.isnan(point) or len(acc) < 2:
        return point, np.nan, np.nan
    levels = curve.groupby("round").weights_remaining.first()
    bounds = {r: t_interval((acc[r] - acc[0]).dropna()) for r in acc.columns}
    plausible = [levels[r] for r, (low, high) in bounds.items() if high >= -tolerance or r == 0]
    confirmed = [levels[r] for r, (low, high) in bounds.items() if low >= -tolerance or r == 0]
    return point, float(min(plausible)), float(min(confirmed))


def nearest_round(stops: pd.DataFrame, percent: float) -> int:
    """The round whose weights_remaining is nearest to `percent` on a log scale."""
    levels = stops.groupby("round").weights_remaining.first()
    return int((np.log(levels) - np.log(percent)).abs().idxmin())


def round_near(stops: pd.DataFrame, percent: float, within: float = 1.25) -> int | None:
    """nearest_round if its level is within a factor `within` of `percent`, else None."""
    r = nearest_round(stops, percent)
    level = stops[stops["round"] == r].weights_remaining.iloc[0]
    return r if abs(np.log(level / percent)) <= np.log(within) else None


def paired_comparison(a: pd.Series, b: pd.Series) -> dict:
    """Paired difference a − b over shared seeds (Series indexed by seed): mean, t interval, p-value."""
    shared = a.index.intersection(b.index)
    diff = (a[shared] - b[shared]).to_numpy(dtype=float)
    low, high = t_interval(diff)
    p = scipy_stats.ttest_rel(a[shared], b[shared]).pvalue if len(shared) > 1 and diff.std() > 0 else np.nan
    return dict(diff=diff.mean(), low=low, high=high, p=p, seeds=len(shared))


def equivalence(differences, margin: float = EQUIVALENCE_MARGIN) -> dict:
    """Two one-sided t tests (TOST) that the mean paired difference lies within ±margin: p is the
    larger one-sided p-value; `equivalent` when p < 0.05 (the 90% t interval lies inside) over at
    least SAMENESS_SEEDS seeds, so that a table's ≈ is a claim the study's design allows."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    if n < 2:
        return dict(diff=d.mean() if n else np.nan, low90=np.nan, high90=np.nan, p_tost=np.nan, equivalent=False, seeds=n)
    mean, se = d.mean(), d.std(ddof=1) / np.sqrt(n)
    low, high = t_interval(d, level=0.90)
    if se == 0:
        p = 0.0 if abs(mean) < margin else 1.0
    else:
        p = max(scipy_stats.t.sf((mean + margin) / se, n - 1), scipy_stats.t.sf((margin - mean) / se, n - 1))
    return dict(diff=mean, low90=low, high90=high, p_tost=float(p), equivalent=bool(p < 0.05 and n >= SAMENESS_SEEDS),
                seeds=n)


def paired_differences(stops: pd.DataFrame, column: str, a, b, by=("init", "round"), metric: str = "test_acc",
                       margin: float = EQUIVALENCE_MARGIN) -> pd.DataFrame:
    """Per group of `by`: the runs with `column` == a minus those with `column` == b, paired by
    seed (and data seed): mean difference of `metric`, its 95% t interval, the seeds paired, and
    the TOST verdict within ±margin. The level (weights_remaining) is a's."""
    replicate = [c for c in ("seed", "data_seed") if c in stops]
    left, right = stops[stops[column] == a], stops[stops[column] == b]
    merged = left.merge(right, on=[*by, *replicate], suffixes=("_a", "_b"))
    rows = []
    for key, group in merged.groupby(list(by)):
        d = (group[f"{metric}_a"] - group[f"{metric}_b"]).to_numpy(dtype=float)
        mean, low, high = mean_ci(d)
        same = equivalence(d, margin)
        level = group["weights_remaining_a"].iloc[0] if "weights_remaining_a" in group else np.nan
        rows.append(dict(zip(by, key if isinstance(key, tuple) else (key,)), weights_remaining=level, diff=mean,
                         low=low, high=high, seeds=len(d), equivalent=same["equivalent"], p_tost=same["p_tost"]))
    return pd.DataFrame(rows)


STABLE = 0.02  # error barrier under which training is stable to SGD noise (Frankle et al. 2020: 2%)


def area_under_log_density(stops: pd.DataFrame, metric: str = "test_acc", keys=("init",)) -> pd.DataFrame:
    """Per group and seed: the mean of `metric` over log(weights remaining), the trapezoid area under
    its curve from dense to the sparsest level divided by that span (so it reads as an accuracy);
    then its mean and 95% t interval over seeds per group."""
    per_seed = []
    for key, runs in stops.groupby([*keys, "seed"]):
        curve = runs.sort_values("weights_remaining", ascending=False)
        x, y = -np.log(curve.weights_remaining.to_numpy(dtype=float)), curve[metric].to_numpy(dtype=float)
        area = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0])) if len(x) > 1 else np.nan
        per_seed.append({**dict(zip([*keys, "seed"], key)), "area": area})
    table = pd.DataFrame(per_seed)
    return table.groupby(list(keys)).area.agg(lambda a: mean_ci(a)).apply(pd.Series).set_axis(
        ["mean", "low", "high"], axis=1).assign(seeds=table.groupby(list(keys)).seed.nunique()).reset_index()


def first_stable(barriers: pd.DataFrame, by=("init", "round"), k: str = "rewind_iteration",
                 threshold: float = STABLE) -> pd.DataFrame:
    """Per group: the smallest rewind iteration whose mean barrier over seeds is under `threshold`
    (NaN if none), with that barrier."""
    means = barriers.groupby([*by, k]).barrier.mean().reset_index()
    rows = []
    for key, group in means.groupby(list(by)):
        stable = group[group.barrier < threshold].sort_values(k)
        rows.append({**dict(zip(by, key)), "first_stable": stable[k].iloc[0] if len(stable) else np.nan})
    return pd.DataFrame(rows)


def variance_components(stops: pd.DataFrame, by=("init", "round"), metric: str = "test_acc") -> pd.DataFrame:
    """Draw against data order, per group of a crossed grid (every seed, which draws θ0, with every
    data seed): two-way random-effects ANOVA without replication. Mean squares of draws, orders and
    the residual (their interaction and noise) give each one's variance (method of moments, floored
    at 0), its SD and share of their sum, and F tests of draw and order effects."""
    rows = []
    for key, group in stops.groupby(list(by)):
        table = group.pivot_table(index="seed", columns="data_seed", values=metric, aggfunc="first").dropna()
        a, b = table.shape
        if a < 2 or b < 2:
            continue
        y = table.to_numpy(dtype=float)
        grand = y.mean()
        ms_draw = b * ((y.mean(axis=1) - grand) ** 2).sum() / (a - 1)
        ms_order = a * ((y.mean(axis=0) - grand) ** 2).sum() / (b - 1)
        residual = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
        ms_resid = (residual ** 2).sum() / ((a - 1) * (b - 1))
        var = {"draw": max(0.0, (ms_draw - ms_resid) / b), "order": max(0.0, (ms_order - ms_resid) / a),
               "residual": ms_resid}
        total = sum(var.values())
        row = {**dict(zip(by, key if isinstance(key, tuple) else (key,))),
               "weights_remaining": group.weights_remaining.iloc[0], "draws": a, "orders": b}
        for name, v in var.items():
            row[f"sd_{name}"], row[f"share_{name}"] = np.sqrt(v), (v / total if total > 0 else np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            row["p_draw"] = scipy_stats.f.sf(ms_draw / ms_resid, a - 1, (a - 1) * (b - 1)) if ms_resid > 0 else np.nan
            row["p_order"] = scipy_stats.f.sf(ms_order / ms_resid, b - 1, (a - 1) * (b - 1)) if ms_resid > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def censoring(stops: pd.DataFrame, by=("init",)) -> pd.DataFrame:
    """Per group: run-rounds whose early stop is the round's last evaluation (still improving when
    the budget ended), of all run-rounds (failed ones excluded), and as a percent."""
    alive = stops[~stops.failed] if "failed" in stops else stops
    counts = alive.groupby(list(by)).censored.agg(censored="sum", run_rounds="size").reset_index()
    return counts.assign(percent=100 * counts.censored / counts.run_rounds)


def instability(path: pd.DataFrame) -> pd.DataFrame:
    """Per ticket run and round of an instability table (error along the linear path between a
    ticket and its copy, measures.py): the error barrier, the largest error on the path minus the
    mean of its two ends, and those ends' mean."""
    def barrier(points):
        ends = points.test_error[points.alpha.isin([0.0, 1.0])].mean()
        return pd.Series(dict(barrier=points.test_error.max() - ends, end_error=ends))
    keys = [c for c in path.columns if c not in ("alpha", "test_error")]
    return path.groupby(keys, dropna=False).apply(barrier, include_groups=False).reset_index()


def pairwise_comparisons(stops: pd.DataFrame, round_: int, metric="test_acc") -> pd.DataFrame:
    """Every pair of initializers' tickets at one round, paired by seed, with Holm-adjusted p-values."""
    at = stops[(stops["round"] == round_) & (stops.condition == "ticket")]
    one_setup(at, varying=["init"])
    at = at.set_index("seed")
    rows = []
    for a, b in itertools.combinations(sorted(at.init.unique()), 2):
        compared = paired_comparison(at[at.init == a][metric], at[at.init == b][metric])
        shared = at[at.init == a].index.intersection(at[at.init == b].index)
        same = equivalence(at[at.init == a][metric][shared] - at[at.init == b][metric][shared])
        rows.append(dict(a=a, b=b, **compared, p_tost=same["p_tost"], equivalent=same["equivalent"]))
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table.p.to_numpy())
    return table


def control_gaps(stops: pd.DataFrame, round_: int, metric="test_acc") -> pd.DataFrame:
    """Ticket − control at one round, paired by seed: per initializer and control, and over all
    initializers ('all': each seed's mean gap across initializers, so seeds stay the unit), with the
    TOST verdict (`equivalent`)."""
    at = stops[stops["round"] == round_]
    one_setup(at, varying=["init", "condition"])
    wide = at.pivot_table(index=["init", "seed"], columns="condition", values=metric)
    rows = []
    for control in [c for c in wide.columns if c != "ticket"]:
        gap = (wide["ticket"] - wide[control]).dropna()
        for init, values in gap.groupby("init"):
            rows.append(dict(init=init, control=control, **dict(zip(("gap", "low", "high"), mean_ci(values))),
                             seeds=len(values), equivalent=equivalence(values)["equivalent"]))
        per_seed = gap.groupby("seed").mean()
        rows.append(dict(init="all", control=control, **dict(zip(("gap", "low", "high"), mean_ci(per_seed))),
                         seeds=len(per_seed), equivalent=equivalence(per_seed)["equivalent"]))
    return pd.DataFrame(rows)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaNs stay NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid])]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        out[index] = running
    return out


def jaccard(mask_a: dict, mask_b: dict) -> float:
    """|A ∩ B| / |A ∪ B| over all prunable entries of two masks."""
    inter = sum(int((mask_a[n] & mask_b[n]).sum()) for n in mask_a)
    union = sum(int((mask_a[n] | mask_b[n]).sum()) for n in mask_a)
    return inter / union


def mask_overlap(masks: dict) -> pd.DataFrame:
    """Jaccard overlap for every pair of masks; `masks` maps (init, seed) to a mask."""
    rows = [dict(init_a=a[0], seed_a=a[1], init_b=b[0], seed_b=b[1], jaccard=jaccard(masks[a], masks[b]))
            for a, b in itertools.combinations(sorted(masks), 2)]
    return pd.DataFrame(rows, columns=["init_a", "seed_a", "init_b", "seed_b", "jaccard"])


def random_jaccard(mask: dict) -> float:
    """Expected Jaccard of two independent random masks with this mask's per-tensor densities."""
    inter = union = 0.0
    for m in map(np.asarray, mask.values()):
        d, n = m.mean(), m.size
        inter += d * d * n
        union += (2 * d - d * d) * n
    return inter / union


def initializer_summary(stops: pd.DataFrame, levels=(21.1, 7.0, 3.6, 1.8), tolerance: float = 0.0,
                        speedup_at: float = 21.1, chance: float = CHANCE) -> pd.DataFrame:
    """Per initializer (ticket runs of one setup): dense accuracy, the sparsest level still matching
    it (with the range seeds allow), the peak (a level chosen from the data: no interval), accuracy
    at fixed levels and the early-stop speed-up (NaN where no round lies within ×1.25 of the level),
    failed runs. Intervals: 95% t over seeds. Accuracies in percent."""
    tickets = stops[stops.condition == "ticket"]
    one_setup(tickets, varying=["init"])
    failed = tickets.failed if "failed" in tickets else pd.Series(False, index=tickets.index)
    rows = []
    for init, runs in tickets.groupby("init"):
        at = {r: g for r, g in runs.groupby("round")}
        dense = at[0].set_index("seed")
        row = dict(init=init, seeds=runs.seed.nunique(), failed=runs[failed[runs.index]].seed.nunique(),
                   sparsest=runs.weights_remaining.min())
        if "censored" in runs:
            alive = runs[~failed[runs.index]]
            row["censored"], row["run_rounds"] = int(alive.censored.sum()), len(alive)
        row["dense"], row["dense_low"], row["dense_high"] = mean_ci(dense.test_acc * 100)
        row["matching"], row["matching_low"], row["matching_high"] = matching_range(runs, tolerance, chance)
        means = runs.groupby("round").test_acc.mean()
        peak = int(means.idxmax())
        row["peak_level"], row["peak_gain"] = at[peak].weights_remaining.iloc[0], (means[peak] - means[0]) * 100
        for level in levels:
            r = round_near(runs, level)
            mean, low, high = mean_ci(at[r].test_acc * 100) if r is not None else (np.nan,) * 3
            row[f"acc_{level:g}"], row[f"acc_{level:g}_low"], row[f"acc_{level:g}_high"] = mean, low, high
        r = round_near(runs, speedup_at)
        row["speedup"] = dense.iteration.mean() / at[r].iteration.mean() if r is not None else np.nan
        row["speedup_level"] = at[r].weights_remaining.iloc[0] if r is not None else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def overlap_matrix(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean Jaccard between initializers (pairs with the same seed) and, on the diagonal, between
    seeds of one initializer."""
    same_seed = pairs[pairs.seed_a == pairs.seed_b]
    same_init = pairs[pairs.init_a == pairs.init_b]
    names = sorted(set(pairs.init_a) | set(pairs.init_b))
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for (a, b), value in same_seed.groupby(["init_a", "init_b"]).jaccard.mean().items():
        matrix.loc[a, b] = matrix.loc[b, a] = value
    for name, value in same_init.groupby("init_a").jaccard.mean().items():
        matrix.loc[name, name] = value
    return matrix
