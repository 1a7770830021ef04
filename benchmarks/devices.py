"""How far one grid's numbers move between two machines or devices (trains nothing).

    python benchmarks/devices.py results/mnist_main/table.parquet benchmarks/results/grid_m_h200.parquet

Each argument is a results table (`results/GRID/table.parquet`, or `ticketlib results --out X.parquet`);
rows are matched by run, round and iteration, and only those in both count. Float sums differ
between devices, and over thousands of Adam steps two trajectories part, so the comparison is at
the level the study reports: the early-stop row of each run and round, and each scheme's mean
over seeds, against the first table's 95% t interval for that mean.
"""
import argparse

import pandas as pd

from ticketlib.analysis.stats import early_stops, mean_ci

KEY = ["run_id", "round", "iteration"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="reference table (e.g. the CPU's)")
    parser.add_argument("second", help="table to compare (e.g. the GPU's)")
    args = parser.parse_args()
    a, b = pd.read_parquet(args.first), pd.read_parquet(args.second)
    both = a.merge(b[KEY + ["val_loss", "test_acc"]], on=KEY, suffixes=("", "_2"))
    if both.empty:
        raise SystemExit("the two tables share no (run, round, iteration) rows")
    print(f"{len(both)} rows in both ({both.run_id.nunique()} runs, rounds {both['round'].min()}–{both['round'].max()})")
    same = (both.val_loss == both.val_loss_2).mean()
    print(f"validation loss identical in {same:.1%} of rows")

    first, second = (early_stops(t).set_index(["run_id", "round"]) for t in (a, b))
    pairs = first[["init", "iteration", "test_acc"]].join(second[["iteration", "test_acc"]].add_suffix("_2"), how="inner")
    moved = (pairs.iteration != pairs.iteration_2).mean()
    gap = (pairs.test_acc_2 - pairs.test_acc) * 100
    print(f"early stop: {len(pairs)} run-rounds; iteration moved in {moved:.1%}; test accuracy there differs "
          f"by {gap.abs().mean():.2f} points on average (median {gap.abs().median():.2f}, max {gap.abs().max():.1f})")

    per_scheme = pairs.reset_index().groupby(["init", "round"])
    means = per_scheme[["test_acc", "test_acc_2"]].mean() * 100
    intervals = per_scheme.test_acc.apply(lambda acc: mean_ci(acc * 100))  # the first table's (mean, low, high)
    inside = pd.Series([low <= m <= high for m, (_, low, high) in zip(means.test_acc_2, intervals)]).mean()
    diff = (means.test_acc_2 - means.test_acc).abs()
    n = per_scheme.size()
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    print(f"scheme means over {seeds} seeds: differ by {diff.mean():.2f} points on average "
          f"(max {diff.max():.1f}, {diff.idxmax()[0]} round {diff.idxmax()[1]}); the second's mean lies in "
          f"the first's 95% t interval for {inside:.1%} of {len(means)} scheme-rounds")


if __name__ == "__main__":
    main()
