"""Where block-sparse layers beat dense ones: the measurement behind sparse.SPARSE_BELOW.

    python benchmarks/sparse_crossover.py                   # MNIST-1D, about 2 minutes here
    python benchmarks/sparse_crossover.py --dataset mnist   # 784 inputs, about 6 minutes

Whole training steps (forward, backward, Adam, evaluation) of LeNet-300-100, for a stack of
tickets pruned by IMP's layerwise rates for several rounds (speed.py's `stack_jobs`), on one
thread as in a worker: milliseconds per ticket-step with every layer dense vs with the fc
layers block-sparse.
"""
import argparse
import time
from pathlib import Path

import torch
from speed import stack_jobs

import ticketlib.engine.train as trainer
from ticketlib.data.datasets import load_dataset
from ticketlib.imp.protocols import make_run
from ticketlib.nets.models import build_model

ITERATIONS = 200
ROUNDS = [2, 3, 4, 5, 6, 7, 10]  # IMP prunings: fc density 0.64, 0.51, 0.41, 0.33, 0.26, 0.21, 0.11


def milliseconds_per_ticket_step(model, jobs, data, config, sparse_below: float) -> float:
    trainer.SPARSE_BELOW = sparse_below
    start = time.perf_counter()
    trainer.train(model, jobs, data, config, 0, ITERATIONS)
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
        for rounds in ROUNDS:
            jobs = stack_jobs(model, count, config, rounds=rounds)
            dense, sparse = (milliseconds_per_ticket_step(model, jobs, data, config, below) for below in (0.0, 1.0))
            density = jobs[0].mask["hidden.0.weight"].float().mean()
            print(f"| {count} | {density:.2f} | {dense:.3f} | {sparse:.3f} | {sparse / dense:.2f} |", flush=True)


if __name__ == "__main__":
    main()
