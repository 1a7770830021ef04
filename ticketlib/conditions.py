"""The conditions a run trains under, registered by name: IMP's ticket and its controls.

A condition says, for each round r > 0, which mask a run trains with, given its own previous
round and its ticket's mask of round r, and where its weights start:
  draw         its θ0: the ticket's ("init", round 0 then equals the ticket's, bit for bit) or a
               fresh draw from the same scheme ("reinit", another generator purpose)
  late_rewind  under late rewinding (iteration k), whether it starts from the ticket's weights at
               iteration k and trains from k (open_lth's ticket), or from its own θ0 at iteration 0
A control runs beside its ticket, which makes the masks it copies or matches.
"""
from dataclasses import dataclass
from typing import Callable

from .pruning import kept, magnitude_prune, random_prune
from .seeds import generator

# mask(config, previous, ticket_mask, r, kinds) → this round's mask; previous(name) reads round r-1's tensors
MaskRule = Callable[[dict, Callable[[str], dict], dict, int, dict], dict]


@dataclass(frozen=True)
class Condition:
    mask: MaskRule
    draw: str = "init"
    late_rewind: bool = True


CONDITIONS: dict[str, Condition] = {}


def register_condition(name: str, draw: str = "init", late_rewind: bool = True):
    def add(mask: MaskRule) -> MaskRule:
        CONDITIONS[name] = Condition(mask, draw, late_rewind)
        return mask
    return add


@register_condition("ticket")
def magnitude_mask(config, previous, ticket_mask, r, kinds):
    """IMP: prune round r-1's trained weights by magnitude."""
    return magnitude_prune(previous("weights"), previous("mask"), kinds, config["prune_rates"],
                           config["prune_scope"], config["prune_rounding"])


@register_condition("reinit", draw="reinit", late_rewind=False)
def ticket_mask_copy(config, previous, ticket_mask, r, kinds):
    """The ticket's mask, trained from a fresh draw θ0' (it has no iteration k of its own)."""
    return ticket_mask


@register_condition("random")
def random_mask(config, previous, ticket_mask, r, kinds):
    """A random mask with the ticket's per-tensor counts, nested across rounds."""
    return random_prune(previous("mask"), kept(ticket_mask), generator(config["seed"], "random-mask", r))
