"""Where block-sparse layers beat dense ones: the measurement behind sparse.SPARSE_BELOW.

    python benchmarks/sparse_crossover.py                   # MNIST-1D, about 2 minutes here
    python benchmarks/sparse_crossover.py --dataset mnist   # 784 inputs, about 6 minutes

Whole training steps (forward, backward, Adam, evaluation) of LeNet-300-100, for a stack of
tickets pruned by IMP's layerwise rates to several densities, on one thread as in a worker:
milliseconds per ticket-step with every layer dense vs with the fc layers block-sparse.
"""
import argparse
import time
from pathlib import Path

import torch

import ticketlib.train as engine
from ticketlib.datasets import load_dataset
from ticketlib.inits import INITIALIZERS, initialize
from ticketlib.models import build_model, prunable_tensors
from ticketlib.pruning import full_mask, magnitude_prune
from ticketlib.protocols import make_run

ITERATIONS = 200
SCHEMES = list(INITIALIZERS)[:8]
TARGETS = [0.65, 0.52, 0.42, 0.33, 0.27, 0.21, 0.11]  # fc density to prune down to (IMP steps of 20%)


def tickets(model, config, count: int, density: float) -> list:
    kinds = prunable_tensors(model, False)
    jobs = []
    for k in range(count):
        state = initialize(model, SCHEMES[k % 8], 1.0, "default", k // 8, "init")
        mask = full_mask({n: state[n] for n in kinds})
        while mask["hidden.0.weight"].float().mean() > density:
            mask = magnitude_prune(state, mask, kinds, config["prune_rates"], "layerwise")
        jobs.append(engine.Job(state, mask, k // 8))
    return jobs


def milliseconds_per_ticket_step(model, jobs, data, config, sparse_below: float) -> float:
    engine.SPARSE_BELOW = sparse_below
    start = time.perf_counter()
    engine.train(model, jobs, data, config, 0, ITERATIONS)
    return (time.perf_counter() - start) / len(jobs) / ITERATIONS * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["mnist1d", "mnist"], default="mnist1d")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = make_run(args.dataset, "lenet_300_100", "xavier_normal", 0, iterations=1000)
    data = load_dataset(args.dataset, config["num_samples"], config["val_size"], root=Path("data"))
    model = build_model("lenet_300_100", data.input_shape, data.num_classes, config["hidden"])
    print("| stack | fc density | dense (ms/ticket-step) | block-sparse | sparse / dense |")
    print("|---|---|---|---|---|")
    for count in (8, 40):
        for target in TARGETS:
            jobs = tickets(model, config, count, target)
            dense, sparse = (milliseconds_per_ticket_step(model, jobs, data, config, below) for below in (0.0, 1.0))
            density = jobs[0].mask["hidden.0.weight"].float().mean()
            print(f"| {count} | {density:.2f} | {dense:.3f} | {sparse:.3f} | {sparse / dense:.2f} |", flush=True)


if __name__ == "__main__":
    main()
