"""Iterative magnitude pruning: rounds of train → prune → rewind, and its two controls.

Round 0 trains the dense network. Round r > 0 trains, from the rewind point, the network masked
by pruning round r-1's trained weights. Conditions:
  ticket  IMP's mask, rewound to the original init θ0 (or to iteration k: late rewinding)
  reinit  the ticket's mask of that round, with a fresh draw θ0' of the same scheme (other seed)
  random  a random mask with the ticket's per-tensor counts (nested across rounds), at θ0/θk
A control run needs its ticket run's masks, so it runs (or reuses) the ticket run first.

Each run is a sequence of rounds that depend only on the previous round's stored files, so a
grid's round r is a set of independent trainings that share an architecture.
"""
import math

import torch

from .datasets import Data
from .errors import TicketError
from .inits import initialize
from .models import build_model, prunable_tensors
from .pruning import full_mask, kept, magnitude_prune, percent_remaining, random_prune
from .seeds import generator
from .store import Run, Store
from .train import budget, train


def round_mask(run: Run, ticket: Run, r: int, kinds: dict, params: dict) -> dict:
    config = run.config
    if r == 0:
        return full_mask({n: params[n] for n in kinds})
    if config["condition"] == "ticket":
        return magnitude_prune(run.tensors(r - 1, "weights"), run.tensors(r - 1, "mask"), kinds,
                               config["prune_rates"], config["prune_scope"])
    if config["condition"] == "reinit":
        return ticket.tensors(r, "mask")
    return random_prune(run.tensors(r - 1, "mask"), kept(ticket.tensors(r, "mask")),
                        generator(config["seed"], "random-mask", r))


def early_stop_flags(rows: list[dict], diverged: bool) -> list[bool]:
    """The evaluation with the lowest validation loss (the last one without validation)."""
    if diverged:
        return [False] * len(rows)
    losses = [row["val_loss"] for row in rows]
    best = len(rows) - 1 if all(math.isnan(v) for v in losses) else min(
        (i for i in range(len(rows)) if not math.isnan(losses[i])), key=losses.__getitem__)
    return [i == best for i in range(len(rows))]


def run_imp(config: dict, store: Store, data: Data, device="cpu", on_round=lambda: None) -> int:
    """Run (or finish) every round of one run; returns how many rounds were trained."""
    run = store.run(config)
    ticket = run
    trained = 0
    if config["condition"] != "ticket":
        ticket_config = {**config, "condition": "ticket"}
        trained += run_imp(ticket_config, store, data, device, on_round)
        ticket = store.run(ticket_config)

    total = budget(config, data)
    rewind = config["rewind_iteration"]
    if rewind >= total:
        raise TicketError(f"rewind_iteration {rewind} must be below the {total} iterations per round")
    model = build_model(config["model"], data.input_shape, data.num_classes, config["hidden"],
                        config["activation"]).to(device)
    kinds = prunable_tensors(model, config["prune_biases"])
    params = dict(model.named_parameters())
    draw = "reinit" if config["condition"] == "reinit" else "init"  # θ0' or θ0
    theta0 = initialize(model, config["init"], config["scale"], config["bias_init"], config["seed"], draw)

    for r in range(config["rounds"]):
        if run.has_round(r):
            if run.metrics(r)["diverged"]:
                break
            continue
        if ticket is not run and not ticket.has_round(r):
            break  # the ticket diverged before round r: no mask to copy or to match
        mask = {n: m.to(device) for n, m in round_mask(run, ticket, r, kinds, params).items()}
        if r == 0 or config["condition"] == "reinit":
            state, start = theta0, 0
        elif rewind:
            state, start = ticket.tensors(0, "rewind"), rewind
        else:
            state, start = theta0, 0
        snapshot_at = rewind if (r == 0 and rewind and config["condition"] == "ticket") else None
        rows, snapshot, diverged = train(model, state, mask, data, config, start, total, snapshot_at)
        for row, flag in zip(rows, early_stop_flags(rows, diverged)):
            row["is_early_stop"] = flag
        tensors = {"mask": mask, "weights": model.state_dict()}
        if snapshot is not None:
            tensors["rewind"] = snapshot
        run.save_round(r, dict(round=r, weights_remaining=percent_remaining(mask), diverged=diverged,
                               rows=rows), tensors)
        trained += 1
        on_round()
        if diverged:
            break
    return trained
