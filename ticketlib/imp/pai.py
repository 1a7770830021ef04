"""Pruning at initialization: one-shot masks scored at θ0, with no training (Frankle et al. 2021).

Scores, one per prunable weight (higher = kept), as ganguli-lab/Synaptic-Flow computes them:
  magnitude  |θ0|
  snip       |θ0 ⊙ ∂L/∂θ| on a fixed sample of training examples (Lee et al. 2019)
  grasp      θ0 ⊙ Hg, H the loss's Hessian and g its gradient on that sample, logits divided by
             a temperature of 200; the weights whose removal least reduces gradient flow score
             highest (Wang et al. 2020)
  synflow    |θ ⊙ ∂R/∂θ| with R the summed output of the network with weights |θ| on an all-ones
             input, data-free, recomputed over 100 prunings on an exponential schedule to the
             target (Tanaka et al. 2020)
`prune_at_init` keeps the best-scoring weights at given counts per tensor (the ticket's, so only
which weights differ) or, with `scope="global"`, at the total count pooled over tensors (so the
method also chooses how much each layer keeps). Ties go to the lower flat index, as in pruning.py.
"""
import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from ticketlib.errors import unknown
from ticketlib.nets.pruning import SCOPES
from ticketlib.seeds import generator

METHODS = ("magnitude", "snip", "grasp", "synflow")
SAMPLE = 1000          # training examples SNIP and GraSP score on
GRASP_TEMPERATURE = 200
SYNFLOW_ITERATIONS = 100


def scoring_sample(data, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed sample of the training split, drawn from the run's seed."""
    n = len(data.y_train)
    index = torch.randperm(n, generator=generator(seed, "pai-sample"))[:min(SAMPLE, n)]
    return data.x_train[index].cpu(), data.y_train[index].cpu()


def load(model: nn.Module, state: dict, mask: dict) -> dict[str, torch.Tensor]:
    """`model` holding `state` masked by `mask`, in float64 (scores compare tiny products); its prunable weights."""
    model.double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(state[name] * mask[name] if name in mask else state[name])
            p.grad = None
    params = dict(model.named_parameters())
    return {name: params[name] for name in mask}


def snip_scores(model, state, mask, x, y) -> dict:
    weights = load(model, state, mask)
    loss = F.cross_entropy(model(x.double()), y)
    grads = torch.autograd.grad(loss, list(weights.values()))
    return {name: (w * g).abs().detach() for (name, w), g in zip(weights.items(), grads)}


def grasp_scores(model, state, mask, x, y) -> dict:
    weights = load(model, state, mask)
    params = list(weights.values())
    stopped = torch.autograd.grad(F.cross_entropy(model(x.double()) / GRASP_TEMPERATURE, y), params)
    grads = torch.autograd.grad(F.cross_entropy(model(x.double()) / GRASP_TEMPERATURE, y), params, create_graph=True)
    hessian_grad = torch.autograd.grad(sum((s * g).sum() for s, g in zip(stopped, grads)), params)
    return {name: (w * hg).detach() for (name, w), hg in zip(weights.items(), hessian_grad)}


def synflow_scores(model, state, mask, input_shape) -> dict:
    absolute = {name: value.abs() for name, value in state.items()}
    weights = load(model, absolute, mask)
    total = model(torch.ones(1, *input_shape, dtype=torch.float64)).sum()
    grads = torch.autograd.grad(total, list(weights.values()))
    return {name: (w * g).abs().detach() for (name, w), g in zip(weights.items(), grads)}


def keep_best(scores: dict, alive: dict, counts: dict | None, total: int | None) -> dict:
    """Keep the best-scoring alive weights: `counts` per tensor, or `total` pooled over tensors."""
    def best(flat_scores, flat_alive, k):
        keep = torch.zeros_like(flat_alive)
        ranked = torch.where(flat_alive, flat_scores, torch.full_like(flat_scores, -math.inf))
        order = torch.argsort(-ranked, stable=True)[:k]  # descending; ties to the lower index
        keep[order] = True
        return keep & flat_alive
    names = list(scores)
    if counts is not None:
        return {n: best(scores[n].flatten(), alive[n].flatten(), counts[n]).view_as(alive[n]) for n in names}
    pooled = best(torch.cat([scores[n].flatten() for n in names]), torch.cat([alive[n].flatten() for n in names]), total)
    return {n: part.view_as(alive[n]) for n, part in zip(names, pooled.split([alive[n].numel() for n in names]))}


def prune_at_init(method: str, model: nn.Module, state: dict, counts: dict, scope: str = "layerwise",
                  data=None, seed: int = 0) -> dict:
    """The mask `method` chooses at θ0 (`state`) for the prunable tensors named in `counts`, keeping
    `counts[tensor]` weights per tensor (layerwise) or their sum (global). `data`: the dataset (SNIP
    and GraSP score on a sample of it drawn from `seed`; SynFlow needs only its input shape).
    `model` is not changed (scores use a float64 copy)."""
    model = copy.deepcopy(model)
    full = {n: torch.ones_like(state[n], dtype=torch.bool) for n in counts}
    if method not in METHODS:
        raise unknown("pruning-at-initialization method", method, METHODS)
    if scope not in SCOPES:
        raise unknown("scope", scope, SCOPES)
    total = sum(counts.values())
    per_tensor = counts if scope == "layerwise" else None
    if method == "magnitude":
        return keep_best({n: state[n].abs().double() for n in full}, full, per_tensor, total)
    if method in ("snip", "grasp"):
        x, y = scoring_sample(data, seed)
        scores = (snip_scores if method == "snip" else grasp_scores)(model, state, full, x, y)
        return keep_best(scores, full, per_tensor, total)
    mask, sizes = full, {n: m.numel() for n, m in full.items()}
    for i in range(1, SYNFLOW_ITERATIONS + 1):  # prune to the target along an exponential schedule
        fraction = i / SYNFLOW_ITERATIONS
        scores = synflow_scores(model, state, mask, data.input_shape)
        if per_tensor is not None:
            step_counts = {n: round(sizes[n] * (counts[n] / sizes[n]) ** fraction) for n in full}
            mask = keep_best(scores, mask, step_counts, None)
        else:
            mask = keep_best(scores, mask, None, round(sum(sizes.values()) * (total / sum(sizes.values())) ** fraction))
    return mask
