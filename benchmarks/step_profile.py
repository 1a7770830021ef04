"""Where a training step's time goes: torch's profiler over the engine on real MNIST, by operation.

    python benchmarks/step_profile.py               # rounds 0, 6, 10, 14; about 8 minutes here
    python benchmarks/step_profile.py --rounds 0    # the dense round alone

A 16-ticket LeNet-300-100 stack (engine.py's `stack_jobs`: 4 inits × 4 seeds, pruned by IMP's
rates for that many rounds) trains with validation every 100 iterations, on one thread as in a
worker. Printed per round: milliseconds per step, validation included but not a round's fixed
costs (the median of 3 differences of 2N and N steps), and the operations that take most of it
(shares from the profiler, which slows small operations). Then the dense first layer's products
as the engine computes them (one batch-major product per run of tickets sharing a seed) against
one product per ticket over K copies of the minibatch (the engine before), with their bits.
"""
import argparse
import statistics
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from engine import stack_jobs, timed
from ticketlib.datasets import load_dataset
from ticketlib.models import build_model
from ticketlib.protocols import make_run
from ticketlib.pruning import percent_remaining
from ticketlib.seed_runs import SeedRunsLinear, seed_runs
from ticketlib.train import Stack, evaluate, train

TICKETS, SEEDS, BATCH, INPUTS, HIDDEN = 16, 4, 60, 784, 300


def profiled(work) -> dict:
    """Self CPU microseconds per operation while `work` runs."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        work()
    return {e.key: (e.self_cpu_time_total, e.count) for e in prof.key_averages()}


def profile_round(model, data, config, rounds: int, iterations: int, top: int) -> None:
    """A round's cost per step: trainings of 2N and N steps differ by N steps and their evaluations
    every 100, so the round's fixed costs (start, test passes at the end) drop out."""
    jobs = stack_jobs(model, TICKETS, config, rounds=rounds)
    runs = {n: lambda n=n: train(model, jobs, data, config, 0, n) for n in (iterations, 2 * iterations)}
    step = statistics.median((milliseconds(runs[2 * iterations], 1) - milliseconds(runs[iterations], 1)) / iterations
                             for _ in range(3))  # single differences vary by ±30% here
    short, long = profiled(runs[iterations]), profiled(runs[2 * iterations])  # the profiler slows small operations
    extra = {key: (long[key][0] - short.get(key, (0, 0))[0], long[key][1] - short.get(key, (0, 0))[1]) for key in long}
    total = sum(us for us, _ in extra.values())
    stack = Stack(model, jobs, "cpu")
    validation = milliseconds(lambda: evaluate(stack, data.x_val, data.y_val), 3)
    print(f"\nround {rounds} ({percent_remaining(jobs[0].mask):.1f}% of weights remaining): "
          f"{step:.1f} ms per step of {TICKETS} tickets, validation every {config['eval_every']} included; "
          f"one validation pass {validation:.0f} ms ({validation / config['eval_every']:.1f} ms per step)")
    print("| operation | share of the time (profiled) | calls per step |\n|---|---|---|")
    for key, (us, count) in sorted(extra.items(), key=lambda item: item[1][0], reverse=True)[:top]:
        print(f"| {key} | {us / total:.0%} | {count / iterations:.1f} |")


def milliseconds(work, repeats: int = 100) -> float:
    """Milliseconds per call, after one warm-up call."""
    work()
    return timed(lambda: [work() for _ in range(repeats)]) / repeats * 1e3


def first_layer_alternatives() -> None:
    """The dense first layer's forward product and weight gradient as the engine computes them (one
    batch-major product per run of tickets sharing a seed, seed_runs.py) against one product per
    ticket over its own copy of the minibatch: milliseconds and whether the bits agree."""
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(TICKETS, HIDDEN, INPUTS, generator=g) * 0.05).requires_grad_()
    bias = torch.randn(TICKETS, HIDDEN, generator=g).requires_grad_()
    x = torch.rand(SEEDS, INPUTS, BATCH, generator=g)  # each seed's minibatch, features × batch
    seed_row = torch.arange(TICKETS) // (TICKETS // SEEDS)
    grad = torch.randn(TICKETS, HIDDEN, BATCH, generator=g)
    runs, copies = seed_runs(seed_row), x[seed_row]
    ways = {
        "engine: one product per seed run": lambda: SeedRunsLinear.apply(w, bias, x, runs),
        "one product per ticket (K copies)": lambda: torch.baddbmm(bias.unsqueeze(2), w, copies),
    }
    flops = 2 * TICKETS * HIDDEN * INPUTS * BATCH  # of the forward product; the weight gradient's as many
    print(f"\nfirst layer, dense, {TICKETS} tickets of {SEEDS} seeds × batch {BATCH}:\n"
          "| product | forward ms | forward and gradients ms | GFLOP/s (both) | same bits as the engine |\n|---|---|---|---|---|")
    reference = None
    for name, forward in ways.items():
        out = forward()
        gradients = torch.autograd.grad(out, (w, bias), grad)
        if reference is None:  # the engine's, listed first
            reference = out.detach(), gradients
        same = torch.equal(out, reference[0]) and all(map(torch.equal, gradients, reference[1]))
        forward_ms = milliseconds(lambda: forward().detach())
        both_ms = milliseconds(lambda: torch.autograd.grad(forward(), (w, bias), grad))
        print(f"| {name} | {forward_ms:.2f} | {both_ms:.2f} | {2 * flops / both_ms / 1e6:.0f} | {same} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, nargs="+", default=[0, 6, 10, 14], help="IMP prunings before the round")
    parser.add_argument("--iterations", type=int, default=200, help="N (default 200)")
    parser.add_argument("--top", type=int, default=8, help="operations listed per round (default 8)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a worker
    config = make_run("mnist", "lenet_300_100", "xavier_normal", 0)
    data = load_dataset("mnist", None, config["val_size"], root=Path("data"))
    model = build_model("lenet_300_100", data.input_shape, data.num_classes, config["hidden"])
    for rounds in args.rounds:
        profile_round(model, data, config, rounds, args.iterations, args.top)
    first_layer_alternatives()


if __name__ == "__main__":
    main()
