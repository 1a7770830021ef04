"""Train many masked networks of one architecture at once, evaluating as they go.

Tickets that share an architecture, a training setup and a start iteration (different inits,
seeds, conditions) train as one stack: every tensor gains a leading ticket dimension, fully
connected layers are batched matmuls (block-sparse ones once a layer is mostly pruned, see
sparse.py), convolutions run ticket by ticket (grouped convolutions changed results with the
group count), and one Adam (adam.py), elementwise, steps the whole stack. Nothing mixes
tickets, so a ticket's numbers are the same in any stack, alone included (tests/test_train.py).

The data order is a function of (seed, epoch) only, so every init with the same seed sees the
same minibatches at the same iterations; every round replays epochs 0, 1, ... (`per_round`), or
goes on with new epochs where the last round stopped (`continuous`, via `order_offset`). Pruned
entries stay exactly zero: gradients are masked before each Adam step, and moments carried over
from an earlier round (`optimizer_state: keep`) are masked like the weights, so moments and
updates of pruned entries stay zero.
"""
import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

from ticketlib.data.datasets import Data
from ticketlib.engine.adam import Adam
from ticketlib.engine.seed_runs import SeedRunsLinear, seed_runs
from ticketlib.engine.sparse import SPARSE_BELOW, BlockSparse
from ticketlib.errors import TicketError
from ticketlib.seeds import generator

EVAL_EXAMPLES = 256  # examples per evaluation chunk: keeps a stack's activations in cache
EVAL_ELEMENTS = 2 ** 18  # input values per evaluation chunk at most; bounds memory for conv nets
# Weights in one stack (all tickets). On CPU, stacks of ~16 LeNet-300-100s on MNIST train fastest
# per ticket (larger ones spill the caches: 1.8 vs 1.4 ms per ticket-step at 40); on a GPU, as
# many as memory allows (~6 copies with Adam). A ticket's numbers do not depend on its stack.
STACK_ELEMENTS_CPU, STACK_ELEMENTS_GPU = 2 ** 22, 2 ** 25


def steps_per_epoch(data: Data, batch_size: int) -> int:
    return len(data.y_train) // batch_size  # the last partial batch of an epoch is dropped


def budget(config: dict, data: Data) -> int:
    """Iterations per round: given directly, or as epochs."""
    return config["iterations"] or config["epochs"] * steps_per_epoch(data, config["batch_size"])


@lru_cache(maxsize=64)
def epoch_order(seed: int, n: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator(seed, "data-order", epoch))


def sparse_layers(model: nn.Module, mask: dict) -> tuple[str, ...]:
    """Linear layers whose kept weights are few enough to train faster as sparse matrices."""
    return tuple(name for step, name in model.plan if step == "linear"
                 and f"{name}.weight" in mask and mask[f"{name}.weight"].float().mean() < SPARSE_BELOW)


def max_stack(model: nn.Module, device) -> int:
    limit = STACK_ELEMENTS_CPU if torch.device(device).type == "cpu" else STACK_ELEMENTS_GPU
    return max(1, limit // sum(p.numel() for p in model.parameters()))


@dataclass
class Job:
    """One ticket's training in a round."""
    state: dict                     # weights to start from (masked before training)
    mask: dict                      # prunable tensor name → bool tensor, True = kept
    seed: int                       # sets the data order
    snapshot_at: int | None = None  # also keep the weights after this many iterations
    optimizer: dict | None = None   # Adam state to go on from (Outcome.optimizer); None: a fresh Adam
    lr_factors: dict | None = None  # parameter name → its learning rate's multiplier (lr_rule relative)


@dataclass
class Outcome:
    rows: list[dict]                # one per evaluation point
    weights: dict                   # at the end of training
    snapshot: dict | None
    diverged: bool                  # the training loss became non-finite (rows stop there)
    optimizer: dict | None          # Adam's steps and moments at the end, when the config keeps them


class Stack:
    """The tickets' weights as trainable stacked tensors: dense (K × shape) or block-sparse values."""

    def __init__(self, model: nn.Module, jobs: list[Job], device, precision: str = "fp32"):
        self.model, self.size = model, len(jobs)
        self.flat_inputs = model.plan[0][0] == "flatten"  # `inputs` does the flattening, once per batch
        self.bf16 = precision == "bf16"  # bf16 matmuls and convolutions (autocast); fp32 weights, Adam and loss
        self.seeds = sorted({job.seed for job in jobs})  # one minibatch per seed
        self.seed_row = torch.tensor([self.seeds.index(job.seed) for job in jobs], device=device)
        sparse = set(sparse_layers(model, jobs[0].mask))
        first = model.plan[1][1] if self.flat_inputs else None  # a linear layer that takes the data
        seed_grouped = torch.device(device).type == "cpu" and not self.bf16
        # reads each batch once, whichever tickets share it: sparse, or dense in runs of one seed (seed_runs.py)
        self.data_layer = first if first in sparse or seed_grouped else None
        self.seed_runs = seed_runs(self.seed_row)
        self.masks = {name: torch.stack([job.mask[name] for job in jobs]).to(device) for name in jobs[0].mask}
        self.sparse = {layer: BlockSparse(self.masks[f"{layer}.weight"], self.seed_row if layer == first else None)
                       for layer in sparse}
        self.params = {name: self.arrange(name, [job.state[name] for job in jobs], device).requires_grad_()
                       for name, _ in model.named_parameters()}
        self.grad_masks = {name: mask.to(self.params[name].dtype)  # float: a bool factor is converted every step
                           for name, mask in self.masks.items()
                           if name.removesuffix(".weight") not in self.sparse and not mask.all()}
        self.lr_scales = None  # per parameter, each ticket's lr multiplier laid out as the parameter
        if jobs[0].lr_factors is not None:
            self.lr_scales = {name: self.arrange(name, [torch.full_like(job.state[name], job.lr_factors.get(name, 1.0))
                                                        for job in jobs], device) for name in self.params}
        self.adam_start = None  # (steps, exp_avg, exp_avg_sq) to go on from; None: a fresh Adam
        if jobs[0].optimizer is not None:
            steps = {int(job.optimizer["steps"]) for job in jobs}
            if len(steps) > 1:
                raise TicketError(f"tickets of one stack must have taken as many Adam steps; got {sorted(steps)}")
            moments = [[self.arrange(name, [job.optimizer[f"{name}.{moment}"] for job in jobs], device)
                        for name in self.params] for moment in ("exp_avg", "exp_avg_sq")]
            self.adam_start = (steps.pop(), *moments)

    def arrange(self, name: str, tensors: list, device) -> torch.Tensor:
        """One parameter's per-ticket tensors as the stack holds them: stacked, masked, gathered if sparse."""
        stacked = torch.stack(tensors).to(device)
        if name in self.masks:
            stacked = stacked * self.masks[name]
            layer = name.removesuffix(".weight")
            if layer in self.sparse:
                stacked = self.sparse[layer].gather(stacked)
        return stacked

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Examples (n × batch × input shape) as the first layer takes them: a fully connected net's
        as n × features × batch, contiguous, so that a sparse first layer needs no copy."""
        return x.flatten(2).transpose(1, 2).contiguous() if self.flat_inputs else x

    def forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """`inputs` layout, one batch per seed (`seeds` order), or one for every ticket if `shared`
        → K × classes × batch (fp32)."""
        with torch.autocast(x.device.type, torch.bfloat16, enabled=self.bf16):
            return self.layers(x, shared).float()

    def layers(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        p = self.params
        plan = self.model.plan[self.flat_inputs:]
        name = self.data_layer
        if name in self.sparse:
            x = self.sparse[name](p[f"{name}.weight"], p[f"{name}.bias"], x, shared)
            plan = plan[1:]
        elif name and not shared:  # evaluation's shared chunk runs as fast through the batched product below
            x = SeedRunsLinear.apply(p[f"{name}.weight"], p[f"{name}.bias"], x, self.seed_runs)
            plan = plan[1:]
        else:
            x = x.expand(self.size, *x.shape[1:]) if shared else x[self.seed_row]
        for step, name in plan:
            if step == "conv":
                x = torch.stack([F.conv2d(xk, w, b, padding=1) for xk, w, b
                                 in zip(x, p[f"{name}.weight"], p[f"{name}.bias"])])
            elif step == "pool":
                x = F.max_pool2d(x.flatten(0, 1), 2).unflatten(0, x.shape[:2])
            elif step == "flatten":
                x = x.flatten(2).transpose(1, 2)  # K × features × batch: the linear layers' layout
            elif step == "act":
                x = self.model.act(x)
            elif name in self.sparse:
                x = self.sparse[name](p[f"{name}.weight"], p[f"{name}.bias"], x)
            else:
                x = torch.baddbmm(p[f"{name}.bias"].unsqueeze(2), p[f"{name}.weight"], x)
        return x

    def unstack(self, values: dict) -> list[dict]:
        """Per-parameter stacked values (as `arrange` made them) → each ticket's dict, full shape, on the CPU."""
        full = {}
        for name, value in values.items():
            layer = name.removesuffix(".weight")
            full[name] = (self.sparse[layer].scatter(value) if layer in self.sparse else value).detach().cpu()
        return [{name: value[k].clone() for name, value in full.items()} for k in range(self.size)]

    def blend(self, new: dict, old: dict, chosen: torch.Tensor) -> dict:
        """Stacked values per parameter: `new` for the chosen tickets (bool, one per ticket), `old` for the rest."""
        blended = {}
        for name, value in new.items():
            layer = name.removesuffix(".weight")
            pick = chosen[self.sparse[layer].index[0]] if layer in self.sparse else chosen.view(-1, *[1] * (value.dim() - 1))
            blended[name] = torch.where(pick, value, old[name])
        return blended

    def weights(self) -> list[dict]:
        """Each ticket's weights as a state dict (zeros where pruned)."""
        return self.unstack(self.params)

    def optimizer_states(self, adam: Adam) -> list[dict]:
        """Each ticket's Adam steps and moments (full shape), to go on from in the next round."""
        averages, squares = (self.unstack(dict(zip(self.params, values))) for values in (adam.exp_avg, adam.exp_avg_sq))
        return [{"steps": torch.tensor(adam.steps), **{f"{name}.exp_avg": v for name, v in average.items()},
                 **{f"{name}.exp_avg_sq": v for name, v in square.items()}} for average, square in zip(averages, squares)]


@torch.no_grad()
def evaluate(stack: Stack, x: torch.Tensor, y: torch.Tensor) -> tuple[list, list]:
    """Each ticket's mean cross-entropy and accuracy; NaNs for an empty split."""
    if len(y) == 0:
        return [math.nan] * stack.size, [math.nan] * stack.size
    chunk = max(1, min(EVAL_EXAMPLES, EVAL_ELEMENTS // x[0].numel()))
    loss = torch.zeros(stack.size, device=y.device)
    correct = torch.zeros(stack.size, dtype=torch.long, device=y.device)
    for start in range(0, len(y), chunk):
        inputs, target = stack.inputs(x[None, start:start + chunk]), y[start:start + chunk]
        logits = stack.forward(inputs, shared=True)
        target = target.expand(stack.size, -1)
        loss += F.cross_entropy(logits, target, reduction="none").sum(1)
        correct += (logits.argmax(1) == target).sum(1)
    return (loss / len(y)).tolist(), (correct / len(y)).tolist()


class EarlyStopTest:
    """Test accuracy at each ticket's early-stop row and last row only (`test_at: early_stop`).

    The weights at each ticket's lowest validation loss so far are kept (first occurrence, as the
    early-stop rule picks it); at the end the test split is evaluated once on those and once on
    the final weights. Same stack, same weights, same function: the same numbers as evaluating
    at those rows, for 2 test evaluations a round instead of one at every evaluation point.
    """

    def __init__(self, stack: Stack):
        self.stack, self.best_loss, self.best_row = stack, [math.inf] * stack.size, [None] * stack.size
        self.weights = {name: p.detach().clone() for name, p in stack.params.items()}

    def update(self, val_loss: list, recorded: list[bool], rows: list) -> None:
        """After an evaluation: tickets that recorded a row with a new lowest validation loss keep their weights."""
        improved = [r and v < b for r, v, b in zip(recorded, val_loss, self.best_loss)]
        if any(improved):
            chosen = torch.tensor(improved, device=next(iter(self.weights.values())).device)
            self.weights = self.stack.blend({n: p.detach() for n, p in self.stack.params.items()}, self.weights, chosen)
            for k in (k for k, better in enumerate(improved) if better):
                self.best_loss[k], self.best_row[k] = val_loss[k], len(rows[k]) - 1

    def fill(self, rows: list, diverged: list, data: Data) -> None:
        """Write test_acc into each ticket's best row and (unless it diverged) its last row."""
        _, final = evaluate(self.stack, data.x_test, data.y_test)
        current, self.stack.params = self.stack.params, self.weights
        try:
            _, best = evaluate(self.stack, data.x_test, data.y_test)
        finally:
            self.stack.params = current
        for k, ticket_rows in enumerate(rows):
            if ticket_rows and not diverged[k]:
                ticket_rows[-1]["test_acc"] = final[k]
            if self.best_row[k] is not None:
                ticket_rows[self.best_row[k]]["test_acc"] = best[k]


def train(model: nn.Module, jobs: list[Job], data: Data, config: dict, start: int, stop: int,
          device="cpu", order_offset: int = 0, on_steps=lambda steps: None) -> list[Outcome]:
    """Train every job from its state (masked) for iterations [start, stop), all at once.

    Iteration `it` takes its minibatch from position `order_offset + it` of the seed's data
    stream. Each job gets one row per evaluation point: every `eval_every` iterations from
    `start` (and at it), or at the end of every `eval_every_epochs`-th epoch of the stream, and
    at `stop`; a job whose training loss turns non-finite is diverged and gets no more rows.
    `on_steps(n)` hears of every n ticket-steps (iterations × tickets) trained, at each evaluation.
    """
    stack = Stack(model, jobs, device, config["precision"])
    optimizer = Adam(stack.params.values(), lr=config["lr"], state=stack.adam_start,  # elementwise: tickets stay independent
                     lr_scales=stack.lr_scales and [stack.lr_scales[name] for name in stack.params])
    seeds, seed_row = stack.seeds, stack.seed_row
    batch, per_epoch = config["batch_size"], steps_per_epoch(data, config["batch_size"])
    every, every_epochs = config["eval_every"], config["eval_every_epochs"]
    rows, diverged = [[] for _ in jobs], [False] * len(jobs)
    snapshots = [None] * len(jobs)
    loss_sum, steps, orders, order_epoch = torch.zeros(len(jobs), device=device), 0, None, None
    unmeasured = [math.nan] * len(jobs)
    splits = config["eval_splits"]
    early_stop_test = EarlyStopTest(stack) if "test" in splits and config["test_at"] == "early_stop" else None

    def record(iteration):
        val_loss, val_acc = evaluate(stack, data.x_val, data.y_val) if "val" in splits else (unmeasured, unmeasured)
        every_test = "test" in splits and early_stop_test is None
        test_acc = evaluate(stack, data.x_test, data.y_test)[1] if every_test else unmeasured
        train_acc = evaluate(stack, data.x_train, data.y_train)[1] if "train" in splits else unmeasured
        train_loss = (loss_sum / steps).tolist() if steps else unmeasured
        recorded = [not d for d in diverged]
        for k in range(len(jobs)):
            if recorded[k]:
                rows[k].append(dict(iteration=iteration, train_loss=train_loss[k], val_loss=val_loss[k],
                                    val_acc=val_acc[k], test_acc=test_acc[k], train_acc=train_acc[k]))
                diverged[k] = steps > 0 and not math.isfinite(train_loss[k])
        if early_stop_test is not None:
            early_stop_test.update(val_loss, recorded, rows)

    if every:
        record(start)
    for it in range(start, stop):
        if any(job.snapshot_at == it for job in jobs):
            snapshots = [w if job.snapshot_at == it else s for job, w, s in zip(jobs, stack.weights(), snapshots)]
        epoch, step = divmod(order_offset + it, per_epoch)
        if epoch != order_epoch:
            orders = torch.stack([epoch_order(s, len(data.y_train), epoch) for s in seeds]).to(device)
            order_epoch = epoch
        idx = orders[:, step * batch:(step + 1) * batch]  # seeds × batch: gathered and laid out once per seed
        inputs, targets = stack.inputs(data.x_train[idx]), data.y_train[idx][seed_row]
        losses = F.cross_entropy(stack.forward(inputs), targets, reduction="none").mean(1)
        optimizer.zero_grad()
        losses.sum().backward()  # tickets share no weights, so each gets its own loss's gradient
        for name, mask in stack.grad_masks.items():
            stack.params[name].grad.mul_(mask)
        optimizer.step()
        loss_sum, steps = loss_sum + losses.detach(), steps + 1
        done = it + 1
        if ((every and (done - start) % every == 0) or done == stop
                or (every_epochs and (order_offset + done) % (every_epochs * per_epoch) == 0)):
            record(done)
            on_steps(steps * len(jobs))
            loss_sum, steps = torch.zeros_like(loss_sum), 0
            if all(diverged):
                break
    if early_stop_test is not None:
        early_stop_test.fill(rows, diverged, data)
    kept = stack.optimizer_states(optimizer) if config["optimizer_state"] == "keep" else [None] * len(jobs)
    return [Outcome(r, w, s, d, o) for r, w, s, d, o in zip(rows, stack.weights(), snapshots, diverged, kept)]
