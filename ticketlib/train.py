"""Train one masked network over an iteration range, evaluating as it goes.

The data order is a function of (seed, epoch) only, so every round of a run, and every init
with the same seed, sees the same minibatches at the same iterations. Pruned entries stay
exactly zero: gradients are masked before each Adam step (so its moments stay zero there) and
weights are masked after it.
"""
import math
from functools import lru_cache

import torch
from torch import nn

from .datasets import Data
from .seeds import generator

EVAL_CHUNK = 1000  # examples per evaluation forward pass; bounds memory for conv nets


def steps_per_epoch(data: Data, batch_size: int) -> int:
    return len(data.y_train) // batch_size  # the last partial batch of an epoch is dropped


def budget(config: dict, data: Data) -> int:
    """Iterations per round: given directly, or as epochs."""
    return config["iterations"] or config["epochs"] * steps_per_epoch(data, config["batch_size"])


@lru_cache(maxsize=4)
def epoch_order(seed: int, n: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator(seed, "data-order", epoch))


def batch_indices(seed: int, data: Data, batch_size: int, iteration: int) -> torch.Tensor:
    epoch, step = divmod(iteration, steps_per_epoch(data, batch_size))
    order = epoch_order(seed, len(data.y_train), epoch)
    return order[step * batch_size:(step + 1) * batch_size].to(data.y_train.device)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy; NaNs for an empty split."""
    if len(y) == 0:
        return math.nan, math.nan
    loss = correct = 0.0
    for start in range(0, len(y), EVAL_CHUNK):
        logits = model(x[start:start + EVAL_CHUNK])
        target = y[start:start + EVAL_CHUNK]
        loss += nn.functional.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(1) == target).sum().item()
    return loss / len(y), correct / len(y)


def apply_mask(model: nn.Module, mask: dict) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, m in mask.items():
            params[name].mul_(m)


def train(model: nn.Module, state: dict, mask: dict, data: Data, config: dict,
          start: int, stop: int, snapshot_at: int | None = None):
    """Train from `state` (masked) for iterations [start, stop).

    Returns (rows, snapshot, diverged): one row per evaluation point (every `eval_every`
    iterations from `start`, and at `stop`), the weights after `snapshot_at` iterations (or
    None), and whether the training loss became non-finite (training stops there).
    """
    model.load_state_dict(state)
    apply_mask(model, mask)
    params = dict(model.named_parameters())
    masked = [(params[name], m) for name, m in mask.items()]
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    every = config["eval_every"]
    rows, snapshot, loss_sum, steps = [], None, 0.0, 0

    def record(iteration):
        model.eval()
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val)
        _, test_acc = evaluate(model, data.x_test, data.y_test)
        model.train()
        train_loss = loss_sum / steps if steps else math.nan
        rows.append(dict(iteration=iteration, train_loss=train_loss, val_loss=val_loss,
                         val_acc=val_acc, test_acc=test_acc))

    if every:
        record(start)
    for it in range(start, stop):
        if it == snapshot_at:
            snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
        idx = batch_indices(config["seed"], data, config["batch_size"], it)
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        for p, m in masked:
            p.grad.mul_(m)
        optimizer.step()
        with torch.no_grad():
            for p, m in masked:
                p.mul_(m)
        loss_sum, steps = loss_sum + loss.detach(), steps + 1
        done = it + 1
        if (every and (done - start) % every == 0) or done == stop:
            loss_sum = float(loss_sum)
            record(done)
            if not math.isfinite(rows[-1]["train_loss"]):
                return rows, snapshot, True
            loss_sum, steps = 0.0, 0
    return rows, snapshot, False
