"""What per-round patience would change, read from a finished grid's stored rows (trains nothing).

    python benchmarks/patience.py data/grid_m 5 10 20                  # a run store, then patience values P
    python benchmarks/patience.py mnist_main 5 10 20 --rounds 18       # a shipped grid: grid M's rounds

Patience P stops a round once validation loss has not improved for P evaluations. For every
run and round this counts where the early-stop row (lowest validation loss) lies after that
stop, so that the stop would change the reported row, and how many evaluations (training time)
the stop would save. It cannot count the rest: IMP prunes a round's final weights, so a round
stopped early hands a different mask to the next round, and every later round would differ.
"""
import argparse

import numpy as np

from ticketlib.analysis.results import RESULTS, load_grid
from ticketlib.imp.export import load_results


def stop_index(losses: np.ndarray, patience: int) -> int:
    """Index of the evaluation at which patience stops the round (the last one if it never does)."""
    best, since = np.inf, 0
    for i, loss in enumerate(losses):
        if loss < best:
            best, since = loss, 0
        else:
            since += 1
            if since >= patience:
                return i
    return len(losses) - 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a run store's folder, or the name of a shipped grid in results/")
    parser.add_argument("patience", type=int, nargs="+")
    parser.add_argument("--rounds", type=int, help="only each run's first ROUNDS rounds (default: all)")
    args = parser.parse_args()
    shipped = (RESULTS / args.source / "grid.json").is_file()
    table = load_grid(args.source).table if shipped else load_results(args.source)
    table = table[~table.diverged & (table["round"] < (args.rounds or table["round"].max() + 1))]
    rounds = [group.sort_values("iteration") for _, group in table.groupby(["run_id", "round"])]
    print(f"{table.run_id.nunique()} runs, {len(rounds)} rounds (diverged runs left out)")
    print("| patience (evaluations) | rounds whose early-stop row would change | evaluations saved |")
    print("|---|---|---|")
    for patience in args.patience:
        changed = saved = 0
        for group in rounds:
            stop = stop_index(group.val_loss.to_numpy(), patience)
            changed += int(np.flatnonzero(group.is_early_stop.to_numpy())[0] > stop)
            saved += len(group) - 1 - stop
        print(f"| {patience} | {changed} of {len(rounds)} ({changed / len(rounds):.1%}) | "
              f"{saved / sum(len(g) for g in rounds):.0%} |")


if __name__ == "__main__":
    main()
