"""Where block-sparse layers beat dense ones: the measurement behind sparse.SPARSE_BELOW.

    python benchmarks/sparse_crossover.py      # about a minute here

One layer of a 16-ticket stack, forward and backward (weight, bias and input gradients), on one
thread as in a worker: milliseconds per step, block-sparse vs batched dense, by layer shape
(LeNet-300-100 on MNIST-1D and on MNIST) and by the fraction of weights kept.
"""
import time

import torch

from ticketlib.sparse import BlockSparse

TICKETS, BATCH = 16, 60
SHAPES = [(300, 40), (100, 300), (10, 100), (300, 784)]  # out × in
DENSITIES = [0.02, 0.05, 0.1, 0.2, 0.3]


def milliseconds(step, repeats=200) -> float:
    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1e3


def main():
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    print("| layer (out × in) | kept | block-sparse (ms) | dense (ms) | sparse / dense |")
    print("|---|---|---|---|---|")
    for out, inp in SHAPES:
        x = torch.randn(TICKETS, inp, BATCH, generator=generator, requires_grad=True)
        bias = torch.randn(TICKETS, out, generator=generator, requires_grad=True)
        weights = torch.randn(TICKETS, out, inp, generator=generator, requires_grad=True)
        for density in DENSITIES:
            pattern = BlockSparse(torch.rand(TICKETS, out, inp, generator=generator) < density)
            values = pattern.gather(weights.detach()).requires_grad_()
            sparse = milliseconds(lambda: pattern(values, bias, x).sum().backward())
            dense = milliseconds(lambda: torch.baddbmm(bias.unsqueeze(2), weights, x).sum().backward())
            print(f"| {out} × {inp} | {density:.0%} | {sparse:.2f} | {dense:.2f} | {sparse / dense:.2f} |")


if __name__ == "__main__":
    main()
