"""What per-round patience would change, read from a finished grid's stored rows (trains nothing).

    python benchmarks/patience.py data/grid_m 5 10 20     # store, then patience values P

Patience P stops a round once validation loss has not improved for P evaluations. For every
run and round this counts where the early-stop row (lowest validation loss) lies after that
stop, so that the stop would change the reported row, and how many evaluations (training time)
the stop would save. It cannot count the rest: IMP prunes a round's final weights, so a round
stopped early hands a different mask to the next round, and every later round would differ.
"""
import argparse

import numpy as np

from ticketlib.results import load_results


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
    parser.add_argument("store")
    parser.add_argument("patience", type=int, nargs="+")
    args = parser.parse_args()
    table = load_results(args.store)
    table = table[~table.diverged]
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
