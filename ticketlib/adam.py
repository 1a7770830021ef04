"""Adam for the stacked engine: torch.optim.Adam's arithmetic, step for step, with buffers reused.

The same elementwise operations in the same order as `torch.optim.Adam`'s single-tensor path
(no weight decay, no amsgrad), with one difference: on CPU the square root is numpy's, which is
correctly rounded. torch's vectorised CPU square root is not (it is one ulp off for about half
of all values, and the scalar path for a tensor's tail is exact, so a value's result depended on
its position), and it is 6-35× slower on zeros and mixed zeros, which pruned weights make common.
The square-root buffer is reused instead of allocated every step, and `torch.optim`'s first use,
which imports torch's compiler stack (over a second per worker process), is avoided.
"""
import numpy as np
import torch


def sqrt(values: torch.Tensor, out: torch.Tensor) -> None:
    """Correctly rounded square root, elementwise, into `out`."""
    if values.device.type == "cpu":
        np.sqrt(values.numpy(), out=out.numpy())
    else:
        torch.sqrt(values, out=out)  # CUDA's sqrt is correctly rounded


class Adam:
    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, state=None):
        """`state`: (steps, exp_avg list, exp_avg_sq list) to go on from, e.g. where the last round ended."""
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        if state is None:
            state = 0, [torch.zeros_like(p) for p in self.params], [torch.zeros_like(p) for p in self.params]
        self.steps, self.exp_avg, self.exp_avg_sq = state
        self.denom = [torch.empty_like(p) for p in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients: backward then hands over its result instead of adding it to zeros."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** float(self.steps))
        bias_correction2_sqrt = (1 - beta2 ** float(self.steps)) ** 0.5
        for p, exp_avg, exp_avg_sq, denom in zip(self.params, self.exp_avg, self.exp_avg_sq, self.denom):
            exp_avg.lerp_(p.grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            sqrt(exp_avg_sq, denom)
            denom.div_(bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)
