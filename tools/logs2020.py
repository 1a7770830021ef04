"""Regenerate results/logs2020/logs.csv from the 2020 study's own run logs.

    python tools/logs2020.py CHECKOUT/logs [--out results/logs2020/logs.csv]

CHECKOUT is a clone of github.com/stfwn/neural-network-pruning (results/logs2020/README.md names
the commit). Each of its logs/*.log files is one run's JSON: `args` (the command line) and, per
epoch, `test_acc`, `train_acc`, `test_loss`, `train_loss` and `sparsity`. Only the LeNet/MNIST runs
are kept (the Conv-6/CIFAR-10 runs have no counterpart here). The accuracies are written exactly as
logged, under their logged names: the 2020 code swapped them (see results/logs2020/README.md).
Standard library and pandas only, so it runs without the study's environment.
"""
import argparse
import json
import sys
from pathlib import Path

import pandas as pd

# the 2020 code's --initialization names → ours (ticketlib/names.py), in our registry order
SCHEME_NAMES = {
    "normal": "normal", "uniform": "uniform",
    "kaiming-normal": "kaiming_normal", "kaiming-uniform": "kaiming_uniform",
    "xavier-normal": "xavier_normal", "xavier-uniform": "xavier_uniform",
    "xavier-normal-half": "xavier_normal_half", "xavier-normal-double": "xavier_normal_double",
    "xavier-uniform-half": "xavier_uniform_half", "xavier-uniform-double": "xavier_uniform_double",
}
# the protocol every LeNet run used; a log that differs would not be comparable, so it stops the tool
PROTOCOL = {"dataset": "mnist", "epochs": 100, "batch_size": 60, "learning_rate": 0.0012,
            "pruning_rate": 0.2, "pruning_interval": 5}
COLUMNS = ["scheme", "seed", "epoch", "round", "sparsity", "params_remaining", "logged_train_acc",
           "logged_test_acc"]


def run_rows(run: dict) -> pd.DataFrame:
    """One row per epoch of one run's log."""
    args = run["args"]
    differs = {k: args[k] for k, v in PROTOCOL.items() if args[k] != v}
    if differs:
        raise SystemExit(f"a LeNet run with another protocol: {differs}")
    epochs = range(len(run["sparsity"]))
    return pd.DataFrame({
        "scheme": SCHEME_NAMES[args["initialization"]], "seed": args["seed"], "epoch": epochs,
        "round": [e // args["pruning_interval"] for e in epochs],  # pruned at the start of epochs 5, 10, …
        "sparsity": run["sparsity"],  # fraction of all parameters (biases too) exactly zero
        "params_remaining": [round(100 * (1 - s), 6) for s in run["sparsity"]],
        "logged_train_acc": run["train_acc"], "logged_test_acc": run["test_acc"]})


def read_logs(folder: Path) -> pd.DataFrame:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.log"))]
    lenet = [r for r in runs if r["args"]["model"] == "lenet"]
    print(f"{len(runs)} logs, {len(lenet)} LeNet runs kept", file=sys.stderr)
    table = pd.concat([run_rows(r) for r in lenet], ignore_index=True)
    repeated = table.duplicated(["scheme", "seed", "epoch"])
    if repeated.any():  # two logs of one (scheme, seed): the means would count it twice
        raise SystemExit(f"repeated runs: {table[repeated][['scheme', 'seed']].drop_duplicates().values.tolist()}")
    order = {name: i for i, name in enumerate(SCHEME_NAMES.values())}
    return table.sort_values(["scheme", "seed", "epoch"], key=lambda c: c.map(order) if c.name == "scheme" else c,
                             ignore_index=True)[COLUMNS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", type=Path, help="the logs/ folder of a neural-network-pruning checkout")
    parser.add_argument("--out", type=Path, default=Path("results/logs2020/logs.csv"))
    args = parser.parse_args()
    table = read_logs(args.logs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, lineterminator="\n")
    print(f"{len(table)} rows → {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
