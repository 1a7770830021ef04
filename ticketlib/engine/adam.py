"""Adam for the stacked engine: torch.optim.Adam's arithmetic, step for step, fused where exact.

The same elementwise operations in the same order as `torch.optim.Adam`'s single-tensor path
(no weight decay, no amsgrad), with one difference: on CPU the square root is correctly rounded.
torch's vectorised CPU `sqrt` is not (one ulp off for about half of all values, while its scalar
path for a tensor's tail is exact, so a value's result depended on its position), and it is
6-35× slower on zeros, which pruned weights make common; numpy's is exact.

On CPU, torch's fused Adam kernel (one pass instead of seven, ~3× faster) computes exactly these
operations on whole vector blocks, hardware square root included, but not in its scalar tail
loop; so it steps each tensor's first multiple of FUSED_BLOCK values and the operations below
step the rest (tests/test_train.py checks the two agree bit for bit). `torch.optim`'s first use,
which imports torch's compiler stack (over a second per worker process), is avoided.
"""
import numpy as np
import torch

FUSED_BLOCK = 64  # values; a multiple of every CPU vector loop's step, so both paths split alike


def sqrt(values: torch.Tensor, out: torch.Tensor) -> None:
    """Correctly rounded square root, elementwise, into `out`."""
    if values.device.type == "cpu":
        np.sqrt(values.numpy(), out=out.numpy())
    else:
        torch.sqrt(values, out=out)  # CUDA's sqrt is correctly rounded


class Adam:
    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, state=None, lr_scales=None):
        """`state`: (steps, exp_avg list, exp_avg_sq list) to go on from, e.g. where the last round ended.
        `lr_scales`: per parameter, None or a tensor of its shape multiplying `lr` elementwise."""
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.lr_scales = list(lr_scales) if lr_scales is not None else [None] * len(self.params)
        if state is None:
            state = 0, [torch.zeros_like(p) for p in self.params], [torch.zeros_like(p) for p in self.params]
        self.steps, self.exp_avg, self.exp_avg_sq = state
        self.fused = [p.numel() - p.numel() % FUSED_BLOCK if p.device.type == "cpu" and scale is None else 0
                      for p, scale in zip(self.params, self.lr_scales)]
        self.denom = [torch.empty(p.numel() - n, dtype=p.dtype, device=p.device) for p, n in zip(self.params, self.fused)]
        self.step_count = torch.zeros(())  # the fused kernel's copy of `steps`

    def zero_grad(self) -> None:
        """Drop the gradients: backward then hands over its result instead of adding it to zeros."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        tensors = [(p.view(-1), p.grad.view(-1), m.view(-1), v.view(-1))
                   for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq)]
        body = [(*(t[:n] for t in group),) for group, n in zip(tensors, self.fused) if n]
        if body:
            self.step_count.fill_(self.steps)
            torch._fused_adam_(*map(list, zip(*body)), [], [self.step_count] * len(body), lr=self.lr,
                               beta1=beta1, beta2=beta2, weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)
        step_size = self.lr / (1 - beta1 ** float(self.steps))
        bias_correction2_sqrt = (1 - beta2 ** float(self.steps)) ** 0.5
        for (p, grad, exp_avg, exp_avg_sq), n, denom, scale in zip(tensors, self.fused, self.denom, self.lr_scales):
            if n == p.numel():
                continue
            p, grad, exp_avg, exp_avg_sq = p[n:], grad[n:], exp_avg[n:], exp_avg_sq[n:]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            sqrt(exp_avg_sq, denom)
            denom.div_(bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(exp_avg if scale is None else exp_avg * scale.view(-1), denom, value=-step_size)
