"""Benchmark: ticketlib's engine against the common lottery-ticket idiom, in one process run.

    python benchmarks/engine.py                 # grids (a) and (b), about 6 minutes here
    python benchmarks/engine.py --grid a --iterations 100   # a quick look

Grids: (a) MNIST-1D with LeNet-300-100; (b) the same with 784 inputs (MNIST-shaped synthetic
data): 16 tickets each (4 inits × 4 seeds), a few IMP rounds under frankle2019's settings.
Idiom: benchmarks/idiom.py, tickets one after another with every CPU thread. Ours: run_grid,
stacks of tickets in worker processes with one thread each. Then the cost of one round at ≤ 5%
weights remaining relative to a dense round (our engine, one stack of the 16 tickets).
"""
import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from idiom import run_idiom
from ticketlib.datasets import load_dataset
from ticketlib.grid import expand_grid, run_grid
from ticketlib.inits import initialize
from ticketlib.models import build_model, prunable_tensors
from ticketlib.pruning import full_mask, magnitude_prune, percent_remaining
from ticketlib.store import Store
from ticketlib.train import Job, train

INITS = ["xavier_normal", "kaiming_normal", "orthogonal", "pytorch_default"]
SEEDS = [0, 1, 2, 3]


def mnist_shaped(folder: Path) -> str:
    """A 784-input, 10-class npz dataset: noisy class prototypes as 28×28 uint8 images."""
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, (10, 28, 28))
    def split(n):
        y = rng.integers(0, 10, n)
        x = np.clip(prototypes[y] + rng.normal(0, 80, (n, 28, 28)), 0, 255).astype(np.uint8)
        return x, y
    (x_train, y_train), (x_test, y_test) = split(6000), split(1000)
    path = folder / "mnist_shaped.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return f"npz:{path}"


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def compare(dataset: str, num_samples, rounds: int, iterations: int, data_root: Path) -> dict:
    configs = expand_grid([dataset], ["lenet_300_100"], INITS, SEEDS, rounds=rounds, iterations=iterations,
                          num_samples=num_samples)
    data = load_dataset(dataset, num_samples, configs[0]["val_size"], root=data_root)
    with tempfile.TemporaryDirectory() as store:
        ours = timed(lambda: run_grid(configs, Store(store), "cpu", data_root=data_root, progress=False))
    idiom = timed(lambda: run_idiom(data, [(c["init"], c["seed"]) for c in configs], configs[0], rounds))
    return dict(idiom=idiom, ours=ours, ratio=idiom / ours, data=data, config=configs[0])


def sparse_round_cost(data, config, iterations: int) -> tuple[float, float, float]:
    """Seconds for a stack of the 16 tickets to train a round, dense and at ≤ 5% remaining, and
    that percent."""
    model = build_model("lenet_300_100", data.input_shape, data.num_classes, config["hidden"])
    kinds = prunable_tensors(model, False)
    dense, sparse = [], []
    for init in INITS:
        for seed in SEEDS:
            state = initialize(model, init, 1.0, "default", seed, "init")
            mask = full_mask({n: state[n] for n in kinds})
            dense.append(Job(state, mask, seed))
            while percent_remaining(mask) > 5:
                mask = magnitude_prune(state, mask, kinds, config["prune_rates"], "layerwise")
            sparse.append(Job(state, mask, seed))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker
    seconds = [timed(lambda: train(model, jobs, data, config, 0, iterations)) for jobs in (dense, sparse)]
    torch.set_num_threads(threads)
    return seconds[0], seconds[1], percent_remaining(sparse[0].mask)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", choices=["a", "b", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3, help="IMP rounds per ticket (default 3)")
    parser.add_argument("--iterations", type=int, default=1000,
                        help="training iterations per round (default 1000, as in the study)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"grid: 16 tickets (4 inits × 4 seeds) × {args.rounds} rounds × {args.iterations} iterations, "
          "frankle2019 settings\n")
    print("| grid | idiom (s) | ours (s) | ours vs idiom | round at ≤5% / dense round |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        grids = {"a": ("mnist1d", 5000), "b": (mnist_shaped(Path(tmp)), None)}
        for name in ("a", "b") if args.grid == "both" else (args.grid,):
            dataset, num_samples = grids[name]
            result = compare(dataset, num_samples, args.rounds, args.iterations, Path("data"))
            dense, sparse, remaining = sparse_round_cost(result["data"], result["config"], args.iterations)
            inputs = math.prod(result["data"].input_shape)
            print(f"| ({name}) {inputs} inputs | {result['idiom']:.1f} | {result['ours']:.1f} | "
                  f"{result['ratio']:.1f}× faster | {sparse / dense:.2f} ({remaining:.1f}% remaining) |", flush=True)


if __name__ == "__main__":
    main()
