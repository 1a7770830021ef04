"""Iterative magnitude pruning: rounds of train → prune → rewind, and its two controls.

Round 0 trains the dense network from θ0. Round r > 0 trains, from the rewind point, the network
masked by pruning round r-1's trained weights. The rewind point is θ0 (`rewind_target: init`),
iteration k of round 0 (late rewinding), or a PyTorch-default draw made apart from the scheme
(`pytorch_default`: what the 2020 code restored at every reset). Conditions (conditions.py):
  ticket  IMP's mask, rewound as above
  reinit  the ticket's mask of that round, with a fresh draw θ0' (other seed) in place of θ0
  random  a random mask with the ticket's per-tensor counts (nested across rounds), rewound as the ticket
Under late rewinding (iteration k), ticket and random go back to the ticket's weights at k and
train from k; reinit trains its fresh draw θ0' from iteration 0 (it has no iteration k of its own).
A control needs its ticket's mask of the same round, so controls run beside their ticket. With
`optimizer_state: keep`, a round's Adam goes on from the previous round's (its moments masked);
with `data_order: continuous`, round r's minibatches go on where round r-1's stopped.

Each run is a sequence of rounds that depend only on the previous round's files, so a cohort of
runs that share a training setup goes round by round, training each round's tickets together.
"""
import math
from dataclasses import dataclass

from ticketlib.config import run_id
from ticketlib.data.datasets import Data
from ticketlib.engine.machine import machine
from ticketlib.engine.train import Job, budget, max_stack, sparse_layers, train
from ticketlib.errors import TicketError
from ticketlib.imp.conditions import CONDITIONS, Condition, Round, data_order_seed
from ticketlib.imp.protocols import data_seed, lr_rule
from ticketlib.nets.inits import initialize, pytorch_default_draw, relative_lr_factors
from ticketlib.nets.models import build_model, prunable_tensors
from ticketlib.nets.pruning import full_mask, percent_remaining
from ticketlib.store.runs import Run, Store

PER_TICKET = ("init", "scale", "bias_init", "seed", "data_seed", "condition")  # may differ within a stack


def training_setup(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in PER_TICKET + ("rounds",)}


def early_stop_flags(rows: list[dict], diverged: bool) -> list[bool]:
    """The evaluation with the lowest validation loss (the last one without validation)."""
    if diverged:
        return [False] * len(rows)
    losses = [row["val_loss"] for row in rows]
    best = len(rows) - 1 if all(math.isnan(v) for v in losses) else min(
        (i for i in range(len(rows)) if not math.isnan(losses[i])), key=losses.__getitem__)
    return [i == best for i in range(len(rows))]


def with_tickets(configs: list[dict]) -> list[dict]:
    """The configs plus the ticket run every control needs (going as far), tickets first."""
    tickets: dict[str, dict] = {}
    for config in configs:
        ticket = {**config, "condition": "ticket"}
        key = run_id(ticket)
        rounds = max(config["rounds"], tickets.get(key, ticket)["rounds"])
        tickets[key] = {**ticket, "rounds": rounds}
    controls = [c for c in configs if c["condition"] != "ticket"]
    return list(tickets.values()) + controls


@dataclass
class Member:
    """A run of the cohort: its condition, and what its rounds start from."""
    run: Run
    ticket: Run    # the run itself for a ticket
    condition: Condition
    theta0: dict   # round 0's start: θ0, or θ0' for reinit
    rewind: dict   # later rounds' start (without late rewinding): θ0 or θ0', or a PyTorch-default draw
    rounds: int    # how many rounds it asks for (not in the stored config)
    lr_factors: dict | None = None  # per weight tensor (lr_rule relative), from θ0
    done: bool = False
    last: tuple | None = None  # (round, tensors) this process just saved: spares reading them back

    @property
    def is_ticket(self) -> bool:
        return self.ticket is self.run

    def previous(self, r: int, name: str) -> dict:
        """A tensor file of round r - 1, from memory if this process saved it, else from the store."""
        if self.last is not None and self.last[0] == r - 1:
            return self.last[1][name]
        return self.run.tensors(r - 1, name)

    def round(self, r: int, ticket_mask: dict | None, kinds: dict, model, ticket_theta0: dict, data) -> Round:
        return Round(self.run.config, r, lambda name: self.previous(r, name), ticket_mask, kinds, model,
                     ticket_theta0, data)

    def mask(self, rnd: Round, params: dict) -> dict:
        if rnd.r == 0:
            return full_mask({n: params[n] for n in rnd.kinds})
        return self.condition.mask(rnd)

    def start(self, rnd: Round, mask: dict, rewind_iteration: int) -> tuple[dict, int]:
        """The weights round r starts from and the iteration it starts at."""
        if rnd.r == 0:
            base = self.theta0
        elif rewind_iteration and self.condition.late_rewind:
            return self.ticket.tensors(0, "rewind"), rewind_iteration
        else:
            base = self.rewind
        return (self.condition.start(rnd, base, mask) if self.condition.start else base), 0


@dataclass
class Pending:
    """A member's training in this round, waiting for its stack."""
    member: Member
    job: Job
    start: int  # iteration


def members_of(configs: list[dict], store: Store, model, setup: dict) -> list[Member]:
    members = []
    for config in configs:
        condition = CONDITIONS[config["condition"]]
        theta0 = initialize(model, config["init"], config["scale"], config["bias_init"], config["seed"], condition.draw)
        rewind = (theta0 if setup["rewind_target"] == "init"
                  else pytorch_default_draw(model, config["seed"], condition.draw))
        run = store.run(config)
        ticket = run if config["condition"] == "ticket" else store.run({**config, "condition": "ticket"})
        factors = relative_lr_factors(model, theta0) if lr_rule(config) == "relative" else None
        members.append(Member(run, ticket, condition, theta0, rewind, config["rounds"], factors))
    return members


def run_cohort(configs: list[dict], store: Store, data: Data, device="cpu", on_steps=lambda steps: None) -> int:
    """Run (or finish) every round of runs that share a training setup; returns rounds done.
    `on_steps(n)`: told of every n ticket-steps trained."""
    configs = with_tickets(configs)
    setup = training_setup(configs[0])
    if any(training_setup(c) != setup for c in configs):
        raise TicketError("a cohort's runs must share everything but " + ", ".join(PER_TICKET))
    total = budget(setup, data)
    rewind = setup["rewind_iteration"]
    if rewind >= total:
        raise TicketError(f"rewind_iteration {rewind} must be below the {total} iterations per round")
    model = build_model(setup["model"], data.input_shape, data.num_classes, setup["hidden"], setup["activation"])
    kinds = prunable_tensors(model, setup["prune_biases"])
    params = dict(model.named_parameters())
    members = members_of(configs, store, model, setup)
    ticket_theta0 = {m.ticket.path: m.theta0 for m in members if m.is_ticket}  # every control's ticket is a member
    cpu_data = data.to("cpu") if device != "cpu" else data
    keep_optimizer = setup["optimizer_state"] == "keep"
    round_files = ("mask", "weights", "optimizer") if keep_optimizer else ("mask", "weights")
    trained, made = 0, machine(device)
    for r in range(max(c["rounds"] for c in configs)):
        masks, pending, copies = {}, [], []  # masks: the tickets' of this round, for their controls
        for m in members:
            if m.done or r >= m.rounds:
                continue
            if m.run.has_round(r):
                m.done = m.run.metrics(r)["diverged"]
                continue
            if r == 0 and not m.is_ticket and m.condition.shares_round_zero:
                copies.append(m)  # dense from the ticket's θ0 and seed: the ticket's round 0, bit for bit
                continue
            ticket_mask = masks.get(m.ticket.path)
            if ticket_mask is None and r > 0 and not m.is_ticket:
                if not m.ticket.has_round(r):
                    m.done = True  # the ticket diverged before round r: no mask to copy or to match
                    continue
                ticket_mask = m.ticket.tensors(r, "mask")
            rnd = m.round(r, ticket_mask, kinds, model, ticket_theta0[m.ticket.path], cpu_data)
            mask = m.mask(rnd, params)
            if m.is_ticket:
                masks[m.run.path] = mask
            state, start = m.start(rnd, mask, rewind)
            snapshot_at = rewind if (r == 0 and rewind and m.is_ticket) else None
            optimizer = m.previous(r, "optimizer") if keep_optimizer and r > 0 else None
            order = data_order_seed(data_seed(m.run.config), m.run.config["condition"])
            job = Job(state, mask, order, snapshot_at, optimizer, m.lr_factors)
            pending.append(Pending(m, job, start))
        offset = r * total if setup["data_order"] == "continuous" else 0
        for stack in stacks(pending, model, device):
            outcomes = train(model, [p.job for p in stack], data, setup, stack[0].start, total, device, offset, on_steps)
            for p, out in zip(stack, outcomes):
                for row, flag in zip(out.rows, early_stop_flags(out.rows, out.diverged)):
                    row["is_early_stop"] = flag
                tensors = {"mask": p.job.mask, "weights": out.weights}
                if out.snapshot is not None:
                    tensors["rewind"] = out.snapshot
                if out.optimizer is not None:
                    tensors["optimizer"] = out.optimizer
                p.member.run.save_round(r, dict(round=r, weights_remaining=percent_remaining(p.job.mask),
                                                diverged=out.diverged, rows=out.rows, machine=made), tensors)
                p.member.done, p.member.last = out.diverged, (r, tensors)
                trained += 1
        for m in copies:
            metrics = m.ticket.metrics(0)
            m.run.save_round(0, metrics, {name: m.ticket.tensors(0, name) for name in round_files})
            m.done = metrics["diverged"]
            trained += 1
    return trained


def stacks(pending: list[Pending], model, device) -> list[list[Pending]]:
    """Trainings that can go together: same start and same sparse layers, at most max_stack each,
    by seed (tickets of a seed share minibatches, so a stack with fewer seeds gathers fewer)."""
    groups: dict[tuple, list] = {}
    for p in sorted(pending, key=lambda p: p.job.seed):
        groups.setdefault((p.start, sparse_layers(model, p.job.mask)), []).append(p)
    size = max_stack(model, device)
    return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]
