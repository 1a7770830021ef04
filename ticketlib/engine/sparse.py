"""Many masked weight matrices as one block-diagonal CSR matrix, so cost follows the kept weights.

The K stacked matrices W[k] (out × in) become one (K·out) × (G·in) CSR matrix whose values are
the kept entries only, in (ticket, row, column) order, where G is the number of input blocks:
K for a layer that takes each ticket's own activations, or, for a first layer that takes data,
one per minibatch (tickets of one seed share theirs), or one shared by all (evaluation). Its
product with the stacked inputs (G·in) × batch is one CSR product; the weight gradient is
sampled at the kept entries only, so Adam updates just those values. On the CPU the products
run as compiled kernels (csr_kernels.py) with the bits of torch's (`torch.addmm` on a CSR
matrix, `torch.sparse.sampled_addmm`), which run them elsewhere. Each output row sums its own
entries in the same order whatever K and G are, so a ticket's numbers do not depend on its
batch, and the data is not copied K times.
"""
import warnings

import torch

from ticketlib.engine import csr_kernels

# torch flags CSR support as beta once per process; the operations used here are stable.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

# Density under which a layer trains sparse. Whole-step crossovers on MNIST-1D: 0.23 (8 tickets)
# to 0.30 (40), benchmarks/sparse_crossover.py; on MNIST the training step alone crosses at ~0.4
# (stacks of 8-16) and evaluation at ~0.2, so 0.3 stays (a change would alter round 5's numbers).
SPARSE_BELOW = 0.3


def _crow(rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    counts = torch.bincount(rows, minlength=num_rows)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


class BlockSparse:
    """The kept entries of a stacked mask (K × out × in) as a block CSR pattern.

    `groups`: each ticket's input block, for a layer that takes data (tickets of one seed read one
    minibatch); None: each ticket reads its own.
    """

    def __init__(self, mask: torch.Tensor, groups: torch.Tensor | None = None):
        self.stack_shape = mask.shape
        k, self.out, self.inp = mask.shape
        groups = torch.arange(k) if groups is None else groups.cpu()
        self.index = mask.nonzero(as_tuple=True)  # (ticket, row, column), row-major: CSR order
        rows = self.index[0] * self.out + self.index[1]
        cols = groups.to(mask.device)[self.index[0]] * self.inp + self.index[2]
        self.shape = (k * self.out, (int(groups.max()) + 1) * self.inp)
        self.crow, self.col = _crow(rows, self.shape[0]).int(), cols.int()
        self.col_shared = self.index[2].int()  # every ticket reads one input block
        self.order_t = torch.argsort(cols * self.shape[0] + rows)  # value order of the transpose
        self.crow_t, self.col_t = _crow(cols[self.order_t], self.shape[1]).int(), rows[self.order_t].int()
        if self.crow.device.type == "cpu" and csr_kernels.library() is not None:  # what the compiled kernels walk
            csr_kernels.check_pattern(self.crow, self.col, self.shape[1])
            csr_kernels.check_pattern(self.crow, self.col_shared, self.inp)
            csr_kernels.check_pattern(self.crow_t, self.col_t, self.shape[0])

    def gather(self, weights: torch.Tensor) -> torch.Tensor:
        return weights[self.index]

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        weights = values.new_zeros(self.stack_shape)
        weights[self.index] = values
        return weights

    def matrix(self, values: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """The CSR matrix: against G stacked input blocks, or (`shared`) against one block for all."""
        col, shape = (self.col_shared, (self.shape[0], self.inp)) if shared else (self.col, self.shape)
        return torch.sparse_csr_tensor(self.crow, col, values, shape, check_invariants=False)

    def matmul(self, values, bias, x, out, shared: bool) -> None:
        """out = matrix @ x + bias, by the compiled kernel where it runs (same numbers, sooner)."""
        col = self.col_shared if shared else self.col
        if csr_kernels.usable(self.crow, col, values, bias, x):
            csr_kernels.matmul(self.crow, col, values, x, bias, out)
        else:
            torch.addmm(bias.expand(-1, x.shape[1]), self.matrix(values, shared), x, out=out)

    def sampled(self, values, grad, x, shared: bool) -> torch.Tensor:
        """grad @ x.T at the kept entries: the values' gradient."""
        col = self.col_shared if shared else self.col
        if x.shape[1] in csr_kernels.SAMPLED_BATCH and csr_kernels.usable(self.crow, col, grad, x):
            return csr_kernels.sampled(self.crow, col, grad, x)
        return torch.sparse.sampled_addmm(self.matrix(values, shared), grad, x.t(), beta=0).values()

    def transposed(self, values: torch.Tensor) -> torch.Tensor:
        """The CSR matrix's transpose (its values in `order_t`)."""
        return torch.sparse_csr_tensor(self.crow_t, self.col_t, values[self.order_t], self.shape[::-1],
                                       check_invariants=False)

    def transposed_matmul(self, values, grad) -> torch.Tensor:
        """matrix.T @ grad: the inputs' gradient."""
        if csr_kernels.usable(self.crow_t, self.col_t, values, grad):
            return csr_kernels.matmul(self.crow_t, self.col_t, values[self.order_t], grad)
        grad_x = grad.new_empty(self.shape[1], grad.shape[1])  # beta=0: its contents are ignored
        return torch.addmm(grad_x, self.transposed(values), grad, beta=0, out=grad_x)

    def __call__(self, values: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """W[k] @ x[group k] + bias[k] for stacked x (G × in × batch; 1 × in × batch if `shared`)
        and bias (K × out) → K × out × batch, in fp32 also under autocast (CPU sparse products
        have no bf16 kernels)."""
        with torch.autocast(x.device.type, enabled=False):
            x = x.to(values.dtype).reshape(self.inp if shared else self.shape[1], x.shape[-1])
            return _BlockSparseLinear.apply(values, bias.reshape(-1, 1), x, self, shared)


class _BlockSparseLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, bias, x, pattern, shared):
        ctx.save_for_backward(values, x)
        ctx.pattern, ctx.shared = pattern, shared
        out = x.new_empty(pattern.stack_shape[0], pattern.out, x.shape[1])
        # written through a 2-D view but returned whole: in-place activations on a view would
        # make autograd rebuild the base tensor every backward pass
        pattern.matmul(values, bias, x, out.view(-1, x.shape[1]), shared)
        return out

    @staticmethod
    def backward(ctx, grad):
        values, x = ctx.saved_tensors
        grad = grad.reshape(-1, x.shape[1]).contiguous()
        pattern = ctx.pattern
        grad_values = grad_bias = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_values = pattern.sampled(values, grad, x, ctx.shared)
        if ctx.needs_input_grad[1]:
            grad_bias = grad.sum(1, keepdim=True)
        if ctx.needs_input_grad[2]:
            grad_x = pattern.transposed_matmul(values, grad)
        return grad_values, grad_bias, grad_x, None, None
