"""Benchmark: ticketlib's engine against the common lottery-ticket idiom, in one process run.

    python benchmarks/speed.py                 # grids (a), (b), (c) and the grid-M projection
    python benchmarks/speed.py --grid a --iterations 100   # a quick look

Grids: (a) MNIST-1D with LeNet-300-100; (b) the same with 784 inputs (MNIST-shaped synthetic
data); (c) real MNIST, evaluating 5K validation + 10K test examples every 100 iterations (the
idiom through a DataLoader over each split): 16 tickets each (4 inits × 4 seeds), a few IMP
rounds under frankle2019's settings. Idiom: benchmarks/idiom.py, tickets one after another with
every CPU thread. Ours: run_grid, stacks of tickets in worker processes with one thread each
(default: test accuracy at each round's early stop only; grid (c) also with `test_at: every`). Then, per grid, the cost of one round at ≤ 5%
weights remaining relative to a dense round, and the dense stack's training rate in GFLOP/s per
core against single-thread sgemm measured in the same run, and the grid's fp32 floor (its kept-weight
multiply-adds at that rate on every core). Last, a projection of grid M
(issue 11: MNIST, 16 inits × 5 seeds, 18 rounds of 5,000 iterations, evaluation every 100) from
the measured cost of training and evaluating a 40-ticket stack at each round's density.
"""
import argparse
import itertools
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from idiom import run_idiom

from ticketlib.data.datasets import load_dataset
from ticketlib.engine.machine import machine
from ticketlib.engine.train import Job, Stack, evaluate, max_stack, train
from ticketlib.imp.executors import default_workers
from ticketlib.imp.grid import expand_grid, run_grid
from ticketlib.nets.inits import initialize
from ticketlib.nets.models import build_model, prunable_tensors
from ticketlib.nets.pruning import full_mask, magnitude_prune, percent_remaining
from ticketlib.nets.pruning import kept as kept_weights
from ticketlib.store.runs import Store

INITS = ["xavier_normal", "kaiming_normal", "orthogonal", "pytorch_default"]
SEEDS = [0, 1, 2, 3]
GRID_M = dict(tickets=80, rounds=18, iterations=5000, eval_every=100, workers=2)  # 16 inits × 5 seeds


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


def compare(dataset: str, num_samples, rounds: int, iterations: int, data_root: Path, loader_eval=False,
            test_at=("early_stop",)) -> dict:
    """Seconds for the idiom and for our engine (once per `test_at` mode) on the same grid."""
    def grid(mode):
        return expand_grid([dataset], ["lenet_300_100"], INITS, SEEDS, rounds=rounds, iterations=iterations,
                           num_samples=num_samples, test_at=mode)
    configs = grid(test_at[0])
    data = load_dataset(dataset, num_samples, configs[0]["val_size"], root=data_root)
    ours = {}
    for mode in test_at:
        with tempfile.TemporaryDirectory() as store:
            ours[mode] = timed(lambda: run_grid(grid(mode), Store(store), "cpu", data_root=data_root, progress=False))
    idiom = timed(lambda: run_idiom(data, [(c["init"], c["seed"]) for c in configs], configs[0], rounds, loader_eval))
    return dict(idiom=idiom, ours=ours, data=data, config=configs[0])


def sgemm_rate(n: int = 1024, repeats: int = 20) -> float:
    """Single-thread fp32 GEMM rate (GFLOP/s) of an n × n product: the machine's reference."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    one_thread(lambda: torch.mm(a, b))  # warm-up
    seconds = one_thread(lambda: [torch.mm(a, b) for _ in range(repeats)])
    return 2 * n ** 3 * repeats / seconds / 1e9


def training_flops(macs: list[int], batch: int) -> int:
    """FLOPs of one training step of one ticket whose layers (input first) multiply-add `macs` weights
    per example: forward, weight gradients, input gradients of every layer but the first (its input is data)."""
    return 2 * batch * (2 * sum(macs) + sum(macs[1:]))


def dense_macs(model) -> list[int]:
    return [m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]


def computed_macs(mask: dict, sparse) -> list[int]:
    """Multiply-adds per example per layer (input first) that the engine computes: every weight of a
    dense (masked) layer, the kept ones of a block-sparse layer."""
    kept = kept_weights(mask)
    return [kept[name] if name.removesuffix(".weight") in sparse else m.numel()
            for name, m in mask.items() if name.endswith(".weight")]


def floor_seconds(data, config, rounds: int, iterations: int, tickets: int, workers: int, sgemm: float) -> float:
    """Seconds a grid's reported numbers would take if every multiply-add of a kept weight ran at
    the measured single-thread sgemm 1024² rate (the machine's practical fp32 ceiling) on each of
    `workers` cores, and nothing else cost time: training steps, validation at every evaluation
    point, test twice a round (at the early stop and the end). No engine doing this arithmetic in
    fp32 gets below it, so idiom / floor bounds the speed-up any such engine could show."""
    model = build_model("lenet_300_100", data.input_shape, data.num_classes, config["hidden"])
    evaluations = iterations // config["eval_every"] + 1
    ticket = stack_jobs(model, 1, config)[0]
    mask, flops = ticket.mask, 0
    for _ in range(rounds):
        macs = list(kept_weights(mask).values())  # per layer, input first
        flops += training_flops(macs, config["batch_size"]) * iterations
        flops += 2 * sum(macs) * (evaluations * len(data.y_val) + 2 * len(data.y_test))
        mask = magnitude_prune(ticket.state, mask, prunable_tensors(model, False), config["prune_rates"], "layerwise")
    return flops * tickets / (sgemm * 1e9 * workers)


def stack_jobs(model, count: int, config, rounds: int = 0, density: float = 1.0) -> list:
    """`count` tickets (the benchmark's inits and seeds, cycled), pruned by IMP's rates `rounds`
    times, and on until at most `density` of their weights remain."""
    kinds = prunable_tensors(model, False)
    jobs = []
    for k in range(count):
        state = initialize(model, INITS[k % len(INITS)], 1.0, "default", k // len(INITS), "init")
        mask = full_mask({n: state[n] for n in kinds})
        for r in itertools.count():
            if r >= rounds and percent_remaining(mask) <= 100 * density:
                break
            mask = magnitude_prune(state, mask, kinds, config["prune_rates"], "layerwise")
        jobs.append(Job(state, mask, k // len(INITS)))
    return jobs


def one_thread(work):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker
    try:
        return timed(work)
    finally:
        torch.set_num_threads(threads)


def dense_rate(data, config, iterations: int) -> float:
    """GFLOP/s of a dense 16-ticket stack training without evaluation, on one thread."""
    model = build_model("lenet_300_100", data.input_shape, data.num_classes, config["hidden"])
    jobs = stack_jobs(model, 16, config)
    quiet = {**config, "eval_every": None, "eval_splits": ["val"]}  # one validation pass at the end only
    seconds = one_thread(lambda: train(model, jobs, data, quiet, 0, iterations))
    return training_flops(dense_macs(model), config["batch_size"]) * len(jobs) * iterations / seconds / 1e9


def project_grid_m(data, config, iterations: int = 100) -> tuple[float, float, list[dict]]:
    """Hours for grid M in our engine (test_at early_stop, the default; every), and each round's
    costs: each worker's share of tickets in stacks of at most max_stack, costed from one such stack
    timed at each round's density: training per iteration, and one evaluation of validation and of test."""
    model = build_model("lenet_300_100", data.input_shape, data.num_classes, config["hidden"])
    per_worker = GRID_M["tickets"] // GRID_M["workers"]
    size = min(per_worker, max_stack(model, "cpu"))
    evaluations = GRID_M["iterations"] // GRID_M["eval_every"] + 1
    every = early = 0.0
    rounds = []
    quiet = {**config, "eval_every": None, "eval_splits": ["val"]}
    for r in range(GRID_M["rounds"]):
        jobs = stack_jobs(model, size, config, rounds=r)  # round r's masks: r prunings
        one_eval = one_thread(lambda: train(model, jobs, data, quiet, 0, 1))  # set-up, one step, one evaluation
        step = (one_thread(lambda: train(model, jobs, data, quiet, 0, iterations + 1)) - one_eval) / iterations
        stack = Stack(model, jobs, "cpu")
        val = one_thread(lambda: evaluate(stack, data.x_val, data.y_val))
        test = one_thread(lambda: evaluate(stack, data.x_test, data.y_test))
        base = GRID_M["iterations"] * step + evaluations * val
        every += (base + evaluations * test) * per_worker / size
        seconds = (base + 2 * test) * per_worker / size
        early += seconds
        flops = training_flops(computed_macs(jobs[0].mask, stack.sparse), config["batch_size"]) * size
        rounds.append(dict(round=r, remaining=percent_remaining(jobs[0].mask), sparse=", ".join(sorted(stack.sparse)) or "none",
                           step_ms=step * 1e3, val_ms=val * 1e3, rate=flops / step / 1e9, seconds=seconds))
    return early / 3600, every / 3600, rounds


def sparse_round_cost(data, config, iterations: int) -> tuple[float, float, float]:
    """Seconds for a stack of the 16 tickets to train a round, dense and at ≤ 5% remaining, and
    that percent."""
    model = build_model("lenet_300_100", data.input_shape, data.num_classes, config["hidden"])
    dense, sparse = stack_jobs(model, 16, config), stack_jobs(model, 16, config, density=0.05)
    seconds = [one_thread(lambda: train(model, jobs, data, config, 0, iterations)) for jobs in (dense, sparse)]
    return seconds[0], seconds[1], percent_remaining(sparse[0].mask)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", choices=["a", "b", "c", "m", "all"], default="all",
                        help="one grid, m for the grid-M projection alone, or all (default)")
    parser.add_argument("--rounds", type=int, default=3, help="IMP rounds per ticket (default 3)")
    parser.add_argument("--iterations", type=int, default=1000,
                        help="training iterations per round (default 1000, as in the study)")
    args = parser.parse_args()
    sgemm = sgemm_rate()
    made = machine()
    print(f"machine: {made['cpu']} ({platform.machine()}, widest vector ISA {made['isa']}), {os.cpu_count()} CPUs, "
          f"torch {made['torch']}, {torch.get_num_threads()} threads; sparse kernels: {made['kernels']}; "
          f"sgemm 1024² on one thread: {sgemm:.0f} GFLOP/s")
    print(f"grid: 16 tickets (4 inits × 4 seeds) × {args.rounds} rounds × {args.iterations} iterations, "
          "frankle2019 settings\n")
    workers = default_workers("local", None, "cpu")
    print("| grid | idiom (s) | ours (s) | ours vs idiom | round at ≤5% / dense round | dense stack GFLOP/s per core (of sgemm) "
          f"| fp32 floor on {workers} cores (s) | idiom / floor |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        grids = {"a": ("mnist1d", 5000, False), "b": (mnist_shaped(Path(tmp)), None, False), "c": ("mnist", None, True)}
        chosen = {"all": "abc", "m": ""}.get(args.grid, args.grid)
        for name in chosen:
            dataset, num_samples, loader_eval = grids[name]
            modes = ("early_stop", "every") if name == "c" else ("early_stop",)
            result = compare(dataset, num_samples, args.rounds, args.iterations, Path("data"), loader_eval, modes)
            dense, sparse, remaining = sparse_round_cost(result["data"], result["config"], args.iterations)
            rate = dense_rate(result["data"], result["config"], args.iterations // 2)
            inputs = math.prod(result["data"].input_shape)
            floor = floor_seconds(result["data"], result["config"], args.rounds, args.iterations, 16, workers, sgemm)
            for mode, seconds in result["ours"].items():
                label = f"({name}) {inputs} inputs" + (f", test_at {mode}" if len(modes) > 1 else "")
                print(f"| {label} | {result['idiom']:.1f} | {seconds:.1f} | {result['idiom'] / seconds:.1f}× faster | "
                      f"{sparse / dense:.2f} ({remaining:.1f}% remaining) | {rate:.0f} ({rate / sgemm:.0%}) | "
                      f"{floor:.1f} | {result['idiom'] / floor:.1f}× |", flush=True)
        if args.grid in ("m", "all"):
            config = expand_grid(["mnist"], ["lenet_300_100"], INITS[:1], [0], iterations=GRID_M["iterations"])[0]
            data = load_dataset("mnist", None, config["val_size"], root=Path("data"))
            early, every, rounds = project_grid_m(data, config)
            print(f"\ngrid M by round (one worker's {GRID_M['tickets'] // GRID_M['workers']} tickets; step: one training "
                  "step of the stack, evaluation excluded):\n"
                  "| round | weights remaining | block-sparse layers | step (ms) | step GFLOP/s (weights computed) "
                  "| validation pass (ms) | round (s) | share |\n|---|---|---|---|---|---|---|---|")
            for row in rounds:
                print(f"| {row['round']} | {row['remaining']:.1f}% | {row['sparse']} | {row['step_ms']:.1f} | "
                      f"{row['rate']:.0f} | {row['val_ms']:.0f} | {row['seconds']:.0f} | {row['seconds'] / 3600 / early:.0%} |")
            floor = floor_seconds(data, config, GRID_M["rounds"], GRID_M["iterations"], GRID_M["tickets"],
                                  GRID_M["workers"], sgemm)
            print(f"\ngrid M projected ({GRID_M['tickets']} tickets × {GRID_M['rounds']} rounds × "
                  f"{GRID_M['iterations']} iterations on {GRID_M['workers']} workers): {early:.2f} h "
                  f"(default, test at the early stop), {every:.2f} h with test at every evaluation; "
                  f"fp32 floor {floor / 60:.0f} min (kept weights only, at the sgemm rate on every core)")


if __name__ == "__main__":
    main()
