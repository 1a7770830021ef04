"""A dense first layer that reads each minibatch once: one product per run of tickets sharing a seed.

Tickets with one seed see the same minibatch (train.py), so instead of K copies of the data and
K products W[k] @ X, each run of consecutive tickets with one seed makes a single batch-major
product X^T [W[a]; ...; W[b-1]]^T, and its weight gradients a single G X^T. On this machine's
MKL every output sums its products in the same order as the per-ticket batched products, so the
numbers are the same bits (tests/test_train.py; whole grids: `ticketlib verify`), and a masked-dense
16-ticket LeNet-784 step is 4–10% faster (README, Speed). CPU, fp32 only.
"""
import itertools

import torch


def seed_runs(seed_row: torch.Tensor) -> list[tuple[int, int, int]]:
    """(first ticket, end, seed index) of each run of consecutive tickets with one seed."""
    runs, start = [], 0
    for seed, run in itertools.groupby(seed_row.tolist()):
        end = start + len(list(run))
        runs.append((start, end, seed))
        start = end
    return runs


class SeedRunsLinear(torch.autograd.Function):
    """weight (K × out × in), bias (K × out), x (seeds × in × batch) → K × out × batch: ticket k's
    W[k] @ x[its seed] + bias[k]."""

    @staticmethod
    def forward(ctx, weight, bias, x, runs):
        tickets, outputs, inputs = weight.shape
        x_t = x.transpose(1, 2).contiguous()  # seeds × batch × in: one small copy per step
        out = weight.new_empty(tickets, outputs, x.shape[2])
        for a, b, seed in runs:
            product = torch.addmm(bias[a:b].reshape(1, -1), x_t[seed], weight[a:b].reshape(-1, inputs).t())
            out[a:b] = product.view(-1, b - a, outputs).permute(1, 2, 0)
        ctx.save_for_backward(x_t)
        ctx.runs, ctx.shape = runs, weight.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        x_t, = ctx.saved_tensors
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_weight = grad.new_empty(ctx.shape)
            for a, b, seed in ctx.runs:
                torch.mm(grad[a:b].reshape(-1, grad.shape[2]), x_t[seed], out=grad_weight[a:b].view(-1, ctx.shape[2]))
        if ctx.needs_input_grad[1]:
            grad_bias = grad.sum(2)
        return grad_weight, grad_bias, None, None
