"""The conditions a run trains under, registered by name: IMP's ticket, its controls, and the
mechanism probes that each change one thing about the ticket.

A condition says, for each round r > 0, which mask a run trains with (given its own previous
round and its ticket's mask of round r), and where its weights start:
  draw         its θ0: the ticket's ("init") or a fresh draw from the same scheme ("reinit", another
               generator purpose)
  start        optionally, the start made from that θ0 and the round's mask (signs kept, shuffled,
               rescaled); none: θ0 itself, rewound as the ticket is
  late_rewind  under late rewinding (iteration k), whether it starts from the ticket's weights at
               iteration k and trains from k (open_lth's ticket), or from its θ0 at iteration 0
  other_order  it trains on another data order than its ticket (the data seed −1 − d, which no
               run's own data seed can be): a second sample of SGD noise for instability analysis
A control runs beside its ticket, which makes the masks it copies or matches. With no start rule,
no other order and the ticket's draw, its round 0 is the ticket's, bit for bit.
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch

from ticketlib.imp import pai
from ticketlib.nets.pruning import kept, magnitude_prune, random_prune
from ticketlib.seeds import generator


@dataclass
class Round:
    """What a mask or start rule may read about its run's round r."""
    config: dict
    r: int
    previous: Callable[[str], dict]  # round r-1's tensors of this run, by file name
    ticket_mask: dict                # the ticket's mask of round r
    kinds: dict                      # prunable tensor → layer kind
    model: object                    # the network (nn.Module): scratch for scores at θ0
    theta0: dict                     # the ticket's θ0 (for a reinit draw, still the ticket's)
    data: object                     # the dataset (datasets.Data), on the CPU


MaskRule = Callable[[Round], dict]
StartRule = Callable[[Round, dict, dict], dict]  # (round, its θ0 by draw, mask) → start weights


@dataclass(frozen=True)
class Condition:
    mask: MaskRule
    draw: str = "init"
    late_rewind: bool = True
    start: StartRule | None = None
    other_order: bool = False

    @property
    def shares_round_zero(self) -> bool:
        """Whether its dense round is its ticket's (so it is copied, not trained)."""
        return self.draw == "init" and self.start is None and not self.other_order


CONDITIONS: dict[str, Condition] = {}


def register_condition(name: str, draw: str = "init", late_rewind: bool = True, start: StartRule | None = None,
                       other_order: bool = False):
    def add(mask: MaskRule) -> MaskRule:
        CONDITIONS[name] = Condition(mask, draw, late_rewind, start, other_order)
        return mask
    return add


def data_order_seed(data_seed: int, condition: str) -> int:
    return -1 - data_seed if CONDITIONS[condition].other_order else data_seed


@register_condition("ticket")
def magnitude_mask(rnd: Round) -> dict:
    """IMP: prune round r-1's trained weights by magnitude."""
    c = rnd.config
    return magnitude_prune(rnd.previous("weights"), rnd.previous("mask"), rnd.kinds, c["prune_rates"],
                           c["prune_scope"], c["prune_rounding"])


@register_condition("reinit", draw="reinit", late_rewind=False)
def ticket_mask_copy(rnd: Round) -> dict:
    """The ticket's mask, trained from a fresh draw θ0' (it has no iteration k of its own)."""
    return rnd.ticket_mask


@register_condition("random")
def random_mask(rnd: Round) -> dict:
    """A random mask with the ticket's per-tensor counts, nested across rounds."""
    return random_prune(rnd.previous("mask"), kept(rnd.ticket_mask), generator(rnd.config["seed"], "random-mask", rnd.r))


@register_condition("copy", other_order=True)
def ticket_mask_same_start(rnd: Round) -> dict:
    """The ticket's mask and start (θ0, or its rewind point): the barrier's second network."""
    return rnd.ticket_mask


def weights_only(start: StartRule) -> StartRule:
    """A start rule that changes the pruned weight tensors only; biases stay as drawn."""
    def rule(rnd: Round, theta: dict, mask: dict) -> dict:
        return {**theta, **start(rnd, theta, mask)}
    rule.__doc__ = start.__doc__
    return rule


@weights_only
def signs_of_theta0(rnd, theta, mask):
    """Fresh magnitudes |θ0'| (and θ0''s biases), θ0's signs (Zhou et al. 2019)."""
    return {n: theta[n].abs() * torch.where(rnd.theta0[n] < 0, -1.0, 1.0) for n in mask}


@weights_only
def random_signs(rnd, theta, mask):
    """θ0's magnitudes, each sign drawn at random (once per run and tensor)."""
    return {n: theta[n].abs() * (torch.randint(0, 2, theta[n].shape, generator=generator(
        rnd.config["seed"], "random-signs", n)).float() * 2 - 1) for n in mask}


@weights_only
def shuffled(rnd, theta, mask):
    """θ0's kept values of each tensor, permuted among its kept positions (per round)."""
    out = {}
    for n, m in mask.items():
        flat, positions = theta[n].flatten().clone(), m.flatten().nonzero().squeeze(1)
        order = torch.randperm(len(positions), generator=generator(rnd.config["seed"], "shuffle", rnd.r, n))
        flat[positions] = flat[positions[order]]
        out[n] = flat.view_as(theta[n])
    return out


@weights_only
def rescaled(rnd, theta, mask):
    """θ0 with each unit's kept incoming weights × √(fan-in / kept fan-in): the signal a sparse
    layer passes on keeps its dense size (Lee et al. 2020; Evci et al. 2022)."""
    out = {}
    for n, m in mask.items():
        fan_in = math.prod(m.shape[1:])
        kept_in = m.flatten(1).sum(1).clamp(min=1).to(theta[n].dtype)
        out[n] = theta[n] * (fan_in / kept_in).sqrt().view(-1, *[1] * (m.dim() - 1))
    return out


register_condition("sign_kept", draw="reinit", late_rewind=False, start=signs_of_theta0)(ticket_mask_copy)
register_condition("random_signs", late_rewind=False, start=random_signs)(ticket_mask_copy)
register_condition("shuffled", late_rewind=False, start=shuffled)(ticket_mask_copy)
register_condition("rescaled", late_rewind=False, start=rescaled)(ticket_mask_copy)


def pruned_at_init(method: str, scope: str) -> MaskRule:
    def mask(rnd: Round) -> dict:
        return pai.prune_at_init(method, rnd.model, rnd.theta0, kept(rnd.ticket_mask), scope, rnd.data,
                                 rnd.config["seed"])
    where = "at the ticket's count per tensor" if scope == "layerwise" else "at the ticket's total count, pooled"
    mask.__doc__ = f"One-shot {method} scores at θ0 (pai.py), {where}; trained from θ0."
    return mask


for _method in pai.METHODS:  # pruning at initialization: init_magnitude, snip, grasp, synflow (+ _global)
    _name = "init_magnitude" if _method == "magnitude" else _method
    register_condition(_name, late_rewind=False)(pruned_at_init(_method, "layerwise"))
    register_condition(f"{_name}_global", late_rewind=False)(pruned_at_init(_method, "global"))
