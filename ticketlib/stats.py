"""Statistics over seeds: bootstrap intervals, matching-dense sparsity, paired comparisons, mask overlap.

Every function takes the tidy table of `results.load_results` (or its early-stop rows) and
treats seeds as the unit of replication. Seeds are paired across initializers (same data order,
same generator state), so comparisons between initializers are paired by seed.
"""
import itertools

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .store import Store, run_id

LEVEL = 0.95
BOOTSTRAP_SAMPLES = 2000


def early_stops(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run × round: the evaluation at the early-stop iteration."""
    return table[table.is_early_stop.astype(bool)].reset_index(drop=True)


def bootstrap_ci(values, statistic=np.mean, level=LEVEL, samples=BOOTSTRAP_SAMPLES, seed=0) -> tuple:
    """Percentile bootstrap interval of `statistic` over `values` (resampled with replacement)."""
    values = np.sort(np.asarray(values, dtype=float))  # sorted: the interval must not depend on row order (run hashes)
    if len(values) < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    draws = statistic(values[rng.integers(0, len(values), (samples, len(values)))], axis=1)
    return tuple(np.quantile(draws, [(1 - level) / 2, (1 + level) / 2]))


def over_seeds(rows: pd.DataFrame, metric: str, by: list) -> pd.DataFrame:
    """Mean of `metric` over seeds with a 95% bootstrap interval, per group of `by`."""
    def describe(group):
        low, high = bootstrap_ci(group[metric].dropna())
        return pd.Series(dict(weights_remaining=group.weights_remaining.iloc[0], mean=group[metric].mean(),
                              low=low, high=high, seeds=group.seed.nunique()))
    return rows.groupby(by).apply(describe, include_groups=False).reset_index()


def by_level(stops: pd.DataFrame, metric: str, keys=("init", "condition")) -> pd.DataFrame:
    """Per key × round (early-stop rows): sparsity curves."""
    return over_seeds(stops, metric, [*keys, "round"])


def curve_by_iteration(rows: pd.DataFrame, metric: str, keys=("init",)) -> pd.DataFrame:
    """Per key × iteration (rows of one round): training curves."""
    return over_seeds(rows, metric, [*keys, "iteration"])


def matching_level(curve: pd.DataFrame, tolerance: float = 0.0) -> float:
    """Smallest weights_remaining whose mean accuracy over seeds is ≥ the dense mean − tolerance.

    `curve` holds one init's per-seed early-stop accuracies: columns seed, round,
    weights_remaining, test_acc (round 0 is dense). Levels are not required to match in an
    unbroken run: at the sparse end accuracy falls steadily, at the dense end it is noise.
    """
    means = curve.groupby("round").agg(p=("weights_remaining", "first"), acc=("test_acc", "mean"))
    dense = means.acc.loc[0]
    return float(means.p[means.acc >= dense - tolerance].min())


def matching_level_ci(curve: pd.DataFrame, tolerance: float = 0.0, samples=BOOTSTRAP_SAMPLES, seed=0):
    """matching_level with a bootstrap interval over seeds (seeds resampled as whole curves)."""
    point = matching_level(curve, tolerance)
    acc = curve.pivot_table(index="seed", columns="round", values="test_acc")  # seeds × rounds
    if len(acc) < 2:
        return point, np.nan, np.nan
    levels = curve.groupby("round").weights_remaining.first().reindex(acc.columns).to_numpy()
    rng = np.random.default_rng(seed)
    means = np.nanmean(acc.to_numpy()[rng.integers(0, len(acc), (samples, len(acc)))], axis=1)
    matching = means >= means[:, :1] - tolerance  # column 0 is round 0, the dense network
    draws = np.where(matching, levels, np.inf).min(axis=1)
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return point, low, high


def nearest_round(stops: pd.DataFrame, percent: float) -> int:
    """The round whose weights_remaining is nearest to `percent` on a log scale."""
    levels = stops.groupby("round").weights_remaining.first()
    return int((np.log(levels) - np.log(percent)).abs().idxmin())


def paired_comparison(a: pd.Series, b: pd.Series) -> dict:
    """Paired difference a − b over shared seeds (Series indexed by seed): mean, CI, t-test p-value."""
    shared = a.index.intersection(b.index)
    diff = (a[shared] - b[shared]).to_numpy(dtype=float)
    low, high = bootstrap_ci(diff)
    p = scipy_stats.ttest_rel(a[shared], b[shared]).pvalue if len(shared) > 1 and diff.std() > 0 else np.nan
    return dict(diff=diff.mean(), low=low, high=high, p=p, seeds=len(shared))


def pairwise_comparisons(stops: pd.DataFrame, round_: int, metric="test_acc") -> pd.DataFrame:
    """Every pair of initializers at one round, paired by seed, with Holm-adjusted p-values."""
    at = stops[stops["round"] == round_].set_index("seed")
    rows = [dict(a=a, b=b, **paired_comparison(at[at.init == a][metric], at[at.init == b][metric]))
            for a, b in itertools.combinations(sorted(at.init.unique()), 2)]
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table.p.to_numpy())
    return table


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


def mask_overlap(store: Store, configs: list[dict], round_: int) -> pd.DataFrame:
    """Jaccard overlap of the round's masks for every pair of the given (finished) runs."""
    masks = {}
    for config in configs:
        run = store.find(config)
        if run is not None and run.has_round(round_):
            masks[run_id(config)] = (config, run.tensors(round_, "mask"))
    rows = []
    for (_, (ca, ma)), (_, (cb, mb)) in itertools.combinations(masks.items(), 2):
        rows.append(dict(init_a=ca["init"], seed_a=ca["seed"], init_b=cb["init"], seed_b=cb["seed"],
                         jaccard=jaccard(ma, mb)))
    return pd.DataFrame(rows)


def random_jaccard(mask: dict) -> float:
    """Expected Jaccard of two independent random masks with this mask's per-tensor densities."""
    inter = union = 0.0
    for m in mask.values():
        d, n = m.float().mean().item(), m.numel()
        inter += d * d * n
        union += (2 * d - d * d) * n
    return inter / union



def mean_ci(values) -> tuple[float, float, float]:
    """Mean and its 95% bootstrap interval."""
    values = np.asarray(values, dtype=float)
    return (values.mean(), *bootstrap_ci(values))


def initializer_summary(stops: pd.DataFrame, levels=(21.1, 7.0, 3.6, 1.8), tolerance: float = 0.0,
                        speedup_at: float = 21.1) -> pd.DataFrame:
    """Per initializer (ticket runs): dense accuracy, the sparsest level still matching it, peak gain,
    accuracy at fixed levels (NaN where no round lies within ×1.25), early-stop speed-up; with 95% CIs.
    Accuracies in percent."""
    rows = []
    for init, runs in stops[stops.condition == "ticket"].groupby("init"):
        at = {r: g for r, g in runs.groupby("round")}
        dense = at[0].set_index("seed")
        row = dict(init=init, seeds=runs.seed.nunique())
        row["dense"], row["dense_low"], row["dense_high"] = mean_ci(dense.test_acc * 100)
        row["matching"], row["matching_low"], row["matching_high"] = matching_level_ci(runs, tolerance)
        means = runs.groupby("round").test_acc.mean()
        peak = int(means.idxmax())
        gain = (at[peak].set_index("seed").test_acc - dense.test_acc) * 100
        row["peak_level"] = at[peak].weights_remaining.iloc[0]
        row["peak_gain"], row["peak_gain_low"], row["peak_gain_high"] = mean_ci(gain.dropna())
        for level in levels:
            r = nearest_round(runs, level)
            near = abs(np.log(at[r].weights_remaining.iloc[0] / level)) <= np.log(1.25)
            mean, low, high = mean_ci(at[r].test_acc * 100) if near else (np.nan,) * 3
            row[f"acc_{level:g}"], row[f"acc_{level:g}_low"], row[f"acc_{level:g}_high"] = mean, low, high
        r = nearest_round(runs, speedup_at)
        row["speedup"] = dense.iteration.mean() / at[r].iteration.mean()
        row["speedup_level"] = at[r].weights_remaining.iloc[0]
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


def with_ci(mean, low, high, digits: int = 1) -> str:
    """'61.2 [60.1, 62.3]', or '—' for a missing value."""
    if np.isnan(mean):
        return "—"
    if np.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def summary_table(summary: pd.DataFrame, levels, speedup_at: float) -> pd.DataFrame:
    """initializer_summary as the paper's table: 'mean [low, high]' cells; levels never reached dropped."""
    def cells(prefix):
        return [with_ci(*row) for row in summary[[prefix, f"{prefix}_low", f"{prefix}_high"]].values]
    columns = {"initializer": summary.init, "dense accuracy (%)": cells("dense"),
               "sparsest matching dense (%)": cells("matching")}
    for level in levels:
        columns[f"accuracy at {level:g}% (%)"] = cells(f"acc_{level:g}")
    columns[f"early-stop speed-up at {speedup_at:g}%"] = summary.speedup.round(2)
    table = pd.DataFrame(columns)
    return table.loc[:, [c for c in table if not (table[c] == "—").all()]]


def difference_matrix(pairs: pd.DataFrame, names, alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Row − column mean paired difference in points, and its labels with * where Holm p < alpha."""
    diff = pairs.pivot(index="a", columns="b", values="diff") * 100
    diff = diff.combine_first(-diff.T).reindex(index=names, columns=names)
    stars = pairs.assign(star=np.where(pairs.p_holm < alpha, "*", "")).pivot(index="a", columns="b", values="star")
    stars = stars.combine_first(stars.T).reindex(index=names, columns=names).fillna("")
    labels = diff.map(lambda v: "" if np.isnan(v) else f"{v:.1f}".replace("-0.0", "0.0")) + stars
    return diff, labels.reindex(index=names, columns=names)  # + aligns and may reorder


def best_versus_worst(stops: pd.DataFrame, pairs: pd.DataFrame, round_: int) -> dict:
    """The most and least accurate initializers at one round and their paired difference (points)."""
    at = stops[stops["round"] == round_].set_index("seed")
    ranked = at.groupby("init").test_acc.mean().sort_values()
    best, worst = ranked.index[-1], ranked.index[0]
    compared = paired_comparison(at[at.init == best].test_acc * 100, at[at.init == worst].test_acc * 100)
    p_holm = pairs[pairs[["a", "b"]].apply(set, axis=1) == {best, worst}].p_holm.iloc[0]
    return dict(best=best, worst=worst, best_acc=f"{ranked[best] * 100:.1f}", worst_acc=f"{ranked[worst] * 100:.1f}",
                best_minus_worst=with_ci(compared["diff"], compared["low"], compared["high"]),
                best_minus_worst_p=f"{p_holm:.2g}")


def overlap_values(overlap: pd.DataFrame, chance: float) -> dict:
    """Mean Jaccard between initializers (off-diagonal), between seeds (diagonal), and by chance."""
    between_inits = overlap.values[~np.eye(len(overlap), dtype=bool)]
    return dict(jaccard_inits=f"{np.nanmean(between_inits):.2f}",
                jaccard_seeds=f"{np.nanmean(np.diag(overlap)):.2f}", jaccard_chance=f"{chance:.2f}")
