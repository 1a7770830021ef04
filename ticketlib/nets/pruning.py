"""Binary masks and pruning: magnitude (layerwise or global) and random with matching counts.

A mask maps a parameter name to a bool tensor of its shape (True = kept). Each pruning step
removes rate × remaining of the still-kept entries, rounded half up or down (`floor`: the 2020
code's int()), so masks are nested. Ties in
magnitude are broken by position (lower flat index pruned first), so pruning is deterministic.
"""
import math

import torch

from ticketlib.config import SCOPES
from ticketlib.errors import TicketError, unknown

Mask = dict[str, torch.Tensor]
RATE_KEYS = {"layerwise": ("fc", "conv", "output"), "global": ("global",)}


def full_mask(params: dict[str, torch.Tensor]) -> Mask:
    return {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}


def kept(mask: Mask) -> dict[str, int]:
    return {name: int(m.sum()) for name, m in mask.items()}


def percent_remaining(mask: Mask) -> float:
    return 100.0 * sum(kept(mask).values()) / sum(m.numel() for m in mask.values())


def prune_count(rate: float, remaining: int, rounding: str = "half_up") -> int:
    if rounding == "floor":
        return math.floor(rate * remaining)
    return math.floor(rate * remaining + 0.5)  # round half up, not Python's banker's rounding


def check_rates(scope: str, rates: dict) -> None:
    if scope not in SCOPES:
        raise unknown("prune_scope", scope, SCOPES)
    expected = RATE_KEYS[scope]
    if set(rates) != set(expected):
        raise TicketError(f"prune_rates for {scope} pruning need exactly the keys "
                          f"{', '.join(expected)}; got {', '.join(rates) or 'none'}")
    for key, rate in rates.items():
        if not 0 < rate < 1:
            raise TicketError(f"prune rate {key}={rate} must be in (0, 1)")


def _drop_smallest(scores: torch.Tensor, alive: torch.Tensor, count: int) -> torch.Tensor:
    """Alive flags (flat) with the `count` smallest alive scores set to False."""
    scores = torch.where(alive, scores, torch.full_like(scores, math.inf))
    alive = alive.clone()
    alive[torch.argsort(scores, stable=True)[:count]] = False
    return alive


def magnitude_prune(weights: dict, mask: Mask, kinds: dict[str, str], rates: dict, scope: str,
                    rounding: str = "half_up") -> Mask:
    """Prune the smallest-magnitude kept entries: per tensor at its kind's rate, or pooled globally."""
    check_rates(scope, rates)
    flat = {n: weights[n].detach().abs().flatten().cpu() for n in mask}
    alive = {n: m.flatten().cpu() for n, m in mask.items()}
    if scope == "layerwise":
        new = {n: _drop_smallest(flat[n], alive[n], prune_count(rates[kinds[n]], int(alive[n].sum()), rounding))
               for n in mask}
    else:
        names = list(mask)
        pooled = torch.cat([alive[n] for n in names])
        pooled = _drop_smallest(torch.cat([flat[n] for n in names]), pooled,
                                prune_count(rates["global"], int(pooled.sum()), rounding))
        new = dict(zip(names, pooled.split([alive[n].numel() for n in names])))
    return {n: new[n].view_as(m).to(m.device) for n, m in mask.items()}


def random_prune(mask: Mask, target: dict[str, int], gen: torch.Generator) -> Mask:
    """Remove uniformly random kept entries of each tensor until it keeps `target[name]` entries."""
    new = {}
    for name, m in mask.items():
        alive = m.flatten().cpu().nonzero().squeeze(1)
        if target[name] > len(alive):
            raise ValueError(f"{name}: cannot keep {target[name]} of {len(alive)} entries")
        drop = alive[torch.randperm(len(alive), generator=gen)[: len(alive) - target[name]]]
        flat = m.flatten().cpu().clone()
        flat[drop] = False
        new[name] = flat.view_as(m).to(m.device)
    return new
