"""Where a training step's time goes: torch's profiler over the engine on real MNIST, by operation.

    python benchmarks/step_profile.py               # rounds 0, 6, 10, 14; about 8 minutes here
    python benchmarks/step_profile.py --rounds 0    # the dense round (and the layer tables)
    python benchmarks/step_profile.py --rounds      # the layer tables alone, about 1 minute

A 16-ticket LeNet-300-100 stack (speed.py's `stack_jobs`: 4 inits × 4 seeds, pruned by IMP's
rates for that many rounds) trains with validation every 100 iterations, on one thread as in a
worker. Printed per round: milliseconds per step, validation included but not a round's fixed
costs (the median of 3 differences of 2N and N steps), and the operations that take most of it
(shares from the profiler, which slows small operations). Then, in the dense rounds, training steps
with the first layer as the engine computes it (one batch-major product per run of tickets sharing
a seed) against one product per ticket over K copies of the minibatch, with their bits.
Last, the block-sparse first layer's CSR products at those rounds' masks, by the compiled
kernels (csr_kernels.c) against torch's, with their bits. The compiled kernels run outside
torch's operators, so the profiler counts their time in the operation that calls them.
"""
import argparse
import statistics
from pathlib import Path

import torch
from speed import stack_jobs, timed
from torch.profiler import ProfilerActivity, profile

from ticketlib.data.datasets import load_dataset
from ticketlib.engine import csr_kernels
from ticketlib.engine import train as train_module
from ticketlib.engine.sparse import BlockSparse
from ticketlib.engine.train import Stack, evaluate, sparse_layers, train
from ticketlib.imp.protocols import make_run
from ticketlib.nets.models import build_model
from ticketlib.nets.pruning import percent_remaining

TICKETS, SEEDS, BATCH, INPUTS, HIDDEN = 16, 4, 60, 784, 300
SEED_ROW = torch.arange(TICKETS) // (TICKETS // SEEDS)  # each ticket's seed, in runs of 4
SPARSE_ROUNDS = [6, 10, 14]  # rounds whose first layer is block-sparse (26%, 11%, 4.4% of its weights)


def profiled(work) -> dict:
    """Self CPU microseconds per operation while `work` runs."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        work()
    return {e.key: (e.self_cpu_time_total, e.count) for e in prof.key_averages()}


def step_milliseconds(model, jobs, data, config, iterations: int) -> float:
    """Milliseconds per training step: trainings of 2N and N steps differ by N steps and their
    evaluations, so the fixed costs (start, test passes at the end) drop out; the median of 3."""
    def run(n):
        return milliseconds(lambda: train(model, jobs, data, config, 0, n), 1)
    return statistics.median((run(2 * iterations) - run(iterations)) / iterations
                             for _ in range(3))  # single differences vary by ±30% here


def profile_round(model, data, config, rounds: int, iterations: int, top: int) -> None:
    """A round's cost per step, evaluations every 100 included, and where it goes."""
    jobs = stack_jobs(model, TICKETS, config, rounds=rounds)
    step = step_milliseconds(model, jobs, data, config, iterations)
    runs = {n: lambda n=n: train(model, jobs, data, config, 0, n) for n in (iterations, 2 * iterations)}
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


class PerTicketStack(Stack):
    """The engine's stack with a dense first layer as one product per ticket over K copies of the
    minibatch (the engine before seed_runs.py)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data_layer not in self.sparse:
            self.data_layer = None


def first_layer_alternatives(model, data, config, rounds: list, iterations: int) -> None:
    """At the rounds whose first layer is dense: training steps with it as the engine computes it (one batch-major product
    per run of tickets sharing a seed, seed_runs.py) against one product per ticket over its own
    copy of the minibatch, in whole steps (apart, the products' timings mislead: their buffers are
    allocated differently): milliseconds per step and whether the weights after 50 steps agree."""
    print(f"\nfirst layer, dense, {TICKETS} tickets of {SEEDS} seeds, ms per training step (evaluation excluded):\n"
          "| round | one product per seed run (engine) | one product per ticket | same bits |\n|---|---|---|---|")
    quiet = {**config, "eval_every": None, "eval_splits": ["val"]}
    for r in rounds:
        jobs = stack_jobs(model, TICKETS, config, rounds=r)
        if Stack(model, jobs, "cpu").data_layer in sparse_layers(model, jobs[0].mask):
            continue  # a block-sparse first layer: both ways are the same
        cells, weights = [], []
        for stack_class in (Stack, PerTicketStack):
            train_module.Stack = stack_class  # train() builds its stack by this name
            try:
                cells.append(step_milliseconds(model, jobs, data, quiet, iterations))
                weights.append([outcome.weights for outcome in train(model, jobs, data, quiet, 0, 50)])
            finally:
                train_module.Stack = Stack
        same = all(torch.equal(a[name], b[name]) for a, b in zip(*weights) for name in a)
        print(f"| {r} | {cells[0]:.1f} | {cells[1]:.1f} | {same} |")


def sparse_kernels(model, config, rounds: list) -> None:
    """The block-sparse first layer's three CSR products at each round's masks (16 tickets of 4
    seeds): the compiled kernels against torch's, milliseconds and whether the bits agree."""
    if csr_kernels.library() is None:
        print("\nthe compiled CSR kernels cannot be built here: torch's run the sparse layers")
        return
    g = torch.Generator().manual_seed(0)
    print(f"\nblock-sparse first layer, {TICKETS} tickets of {SEEDS} seeds, ms per call (compiled / torch's):\n"
          "| round (first layer's density) | forward, batch 60 | weight gradient (sampled) | input gradient (transposed) "
          "| evaluation chunk of 256 | same bits |\n|---|---|---|---|---|---|")
    for r in rounds:
        mask = torch.stack([job.mask["hidden.0.weight"] for job in stack_jobs(model, TICKETS, config, rounds=r)])
        pattern = BlockSparse(mask, SEED_ROW)
        values, bias = torch.randn(int(mask.sum()), generator=g), torch.randn(TICKETS * HIDDEN, 1, generator=g)
        x, shared = torch.rand(SEEDS * INPUTS, BATCH, generator=g), torch.rand(INPUTS, 256, generator=g)
        grad = torch.randn(TICKETS * HIDDEN, BATCH, generator=g)
        crow, col = pattern.crow, pattern.col
        transposed_values = values[pattern.order_t]
        matrix, transposed = pattern.matrix(values), pattern.transposed(values)
        pairs = {
            "forward": (lambda: csr_kernels.matmul(crow, col, values, x, bias),
                        lambda: torch.addmm(bias.expand(-1, BATCH), matrix, x)),
            "sampled": (lambda: csr_kernels.sampled(crow, col, grad, x),
                        lambda: torch.sparse.sampled_addmm(matrix, grad, x.t(), beta=0).values()),
            "transposed": (lambda: csr_kernels.matmul(pattern.crow_t, pattern.col_t, transposed_values, grad),
                           lambda: torch.sparse.mm(transposed, grad)),
            "evaluation": (lambda: csr_kernels.matmul(crow, pattern.col_shared, values, shared, bias),
                           lambda: torch.addmm(bias.expand(-1, 256), pattern.matrix(values, shared=True), shared)),
        }
        same = all(torch.equal(ours(), theirs()) for ours, theirs in pairs.values())
        cells = [f"{milliseconds(ours, 20):.2f} / {milliseconds(theirs, 20):.2f}" for ours, theirs in pairs.values()]
        print(f"| {r} ({mask.float().mean():.1%}) | {' | '.join(cells)} | {same} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, nargs="*", default=[0, 6, 10, 14],
                        help="IMP prunings before the round (none: only the layer tables)")
    parser.add_argument("--iterations", type=int, default=200, help="N (default 200)")
    parser.add_argument("--top", type=int, default=8, help="operations listed per round (default 8)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a worker
    config = make_run("mnist", "lenet_300_100", "xavier_normal", 0)
    data = load_dataset("mnist", None, config["val_size"], root=Path("data"))
    model = build_model("lenet_300_100", data.input_shape, data.num_classes, config["hidden"])
    for rounds in args.rounds:
        profile_round(model, data, config, rounds, args.iterations, args.top)
    first_layer_alternatives(model, data, config, args.rounds, args.iterations)
    sparse_kernels(model, config, SPARSE_ROUNDS)


if __name__ == "__main__":
    main()
