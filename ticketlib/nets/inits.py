"""Weight initializers, registered by name.

Each scheme fills one Linear/Conv2d weight tensor in place from a seeded generator. fan_in is
in_features (Linear) or in_channels·kh·kw (Conv2d); fan_out is out_features or
out_channels·kh·kw. The first docstring line of each scheme is its exact formula at scale 1;
every scheme is multiplied by the run's `scale` (so `xavier_normal_half` is `xavier_normal` at
scale 0.5, and any scheme can be swept over scales).

Biases are not drawn by the scheme: `bias_init` is either `default` (PyTorch's
U(-1/√fan_in, 1/√fan_in), as in the 2020 study) or `zeros`.

Draws are seeded by (seed, purpose, layer name) only, not by the scheme's name: with one seed,
every scheme starts from the same generator state, so schemes are compared on paired random
numbers (e.g. kaiming_normal and xavier_normal weights differ by one factor per layer).
"""
import math
from contextlib import contextmanager
from typing import Callable

import pandas as pd
import torch
from torch import nn

from ticketlib.config import BIAS_INITS
from ticketlib.errors import unknown
from ticketlib.names import SEED2020_INITS, STUDY_INITS
from ticketlib.seeds import generator

Scheme = Callable[[torch.Tensor, torch.Generator], None]
INITIALIZERS: dict[str, Scheme] = {}
TRUNCATED_STD_FACTOR = 0.87962566103423978  # std of N(0,1) truncated to [-2, 2]


def register(name: str):
    def add(scheme: Scheme) -> Scheme:
        INITIALIZERS[name] = scheme
        return scheme
    return add


def fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _normal(w, g, std):
    w.normal_(0.0, std, generator=g)


def _uniform(w, g, bound):
    w.uniform_(-bound, bound, generator=g)


@register("normal")
def normal(w, g):
    """N(0, 1)."""
    _normal(w, g, 1.0)


@register("uniform")
def uniform(w, g):
    """U(0, 1) (not centred: the 2020 study's scheme)."""
    w.uniform_(0.0, 1.0, generator=g)


@register("kaiming_normal")
def kaiming_normal(w, g):
    """N(0, 2/fan_in) (He et al. 2015; PyTorch kaiming_normal_, a=0, fan_in)."""
    _normal(w, g, math.sqrt(2.0 / fans(w)[0]))


@register("kaiming_uniform")
def kaiming_uniform(w, g):
    """U(-√(6/fan_in), √(6/fan_in)) (PyTorch kaiming_uniform_, a=0, fan_in)."""
    _uniform(w, g, math.sqrt(6.0 / fans(w)[0]))


@register("xavier_normal")
def xavier_normal(w, g):
    """N(0, 2/(fan_in+fan_out)) (Glorot & Bengio 2010, gain 1)."""
    fan_in, fan_out = fans(w)
    _normal(w, g, math.sqrt(2.0 / (fan_in + fan_out)))


@register("xavier_uniform")
def xavier_uniform(w, g):
    """U(-√(6/(fan_in+fan_out)), √(6/(fan_in+fan_out))) (Glorot & Bengio 2010, gain 1)."""
    fan_in, fan_out = fans(w)
    _uniform(w, g, math.sqrt(6.0 / (fan_in + fan_out)))


def _with_gain(base: Scheme, gain: float, label: str) -> Scheme:
    def scheme(w, g):
        base(w, g)
        w.mul_(gain)
    scheme.__doc__ = f"{label}: {base.__doc__.split(' (')[0]} × {gain} (gain {gain})."
    return scheme


for _base in ("xavier_normal", "xavier_uniform"):
    for _suffix, _gain in (("half", 0.5), ("double", 2.0)):
        register(f"{_base}_{_suffix}")(_with_gain(INITIALIZERS[_base], _gain, _base))


@register("lecun_normal")
def lecun_normal(w, g):
    """N(0, 1/fan_in) (LeCun et al. 1998)."""
    _normal(w, g, math.sqrt(1.0 / fans(w)[0]))


@register("lecun_uniform")
def lecun_uniform(w, g):
    """U(-√(3/fan_in), √(3/fan_in)) (LeCun et al. 1998)."""
    _uniform(w, g, math.sqrt(3.0 / fans(w)[0]))


@register("orthogonal")
def orthogonal(w, g):
    """W·Wᵀ = I if out ≤ fan_in else Wᵀ·W = I, W flattened to out × fan_in (Saxe et al. 2014, gain 1)."""
    nn.init.orthogonal_(w, gain=1.0, generator=g)


@register("truncated_normal")
def truncated_normal(w, g):
    """N(0, σ²) truncated to ±2σ with σ = √(2/fan_in)/0.8796, so the std is √(2/fan_in) (Keras he_normal)."""
    sigma = math.sqrt(2.0 / fans(w)[0]) / TRUNCATED_STD_FACTOR
    nn.init.trunc_normal_(w, 0.0, sigma, -2 * sigma, 2 * sigma, generator=g)


@register("pytorch_default")
def pytorch_default(w, g):
    """U(-1/√fan_in, 1/√fan_in) (PyTorch's Linear/Conv2d default, kaiming_uniform a=√5)."""
    _uniform(w, g, 1.0 / math.sqrt(fans(w)[0]))


@register("signed_constant")
def signed_constant(w, g):
    """±√(2/fan_in), sign uniformly at random (Zhou et al. 2019)."""
    sign = torch.randint(0, 2, w.shape, generator=g, dtype=w.dtype) * 2 - 1
    w.copy_(sign * math.sqrt(2.0 / fans(w)[0]))


@register("uniform_symmetric")
def uniform_symmetric(w, g):
    """U(-√3, √3): zero mean and N(0, 1)'s unit variance, ignoring the fan (σ = the run's scale)."""
    _uniform(w, g, math.sqrt(3.0))


@register("uniform_centered")
def uniform_centered(w, g):
    """U(-1/2, 1/2): U(0, 1) less its mean (same variance, 1/12)."""
    _uniform(w, g, 0.5)


INIT_GROUPS = {"all": list(INITIALIZERS), "study": STUDY_INITS, "seed2020": SEED2020_INITS}  # names usable in --inits


def resolve(names) -> list[str]:
    """A group name ("all", "study", "seed2020"), a comma-separated string, or a list → scheme names."""
    items = names.split(",") if isinstance(names, str) else list(names)
    return [name for item in items for name in INIT_GROUPS.get(item.strip(), [item.strip()])]


def formula(name: str) -> str:
    return INITIALIZERS[name].__doc__.strip().splitlines()[0]


def check_init(name: str) -> None:
    if name not in INITIALIZERS:
        raise unknown("init", name, INITIALIZERS)


def check_bias_init(name: str) -> None:
    if name not in BIAS_INITS:
        raise unknown("bias_init", name, BIAS_INITS)


@contextmanager
def one_thread():
    """Draws as a training worker makes them: QR (orthogonal) sums in an order that depends on threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def initialize(model: nn.Module, init: str, scale: float, bias_init: str, *seed_parts,
               weight_stream: str = "weight") -> dict:
    """Draw every Linear/Conv2d weight (and bias) of `model` in place; return a copy of the state.

    `seed_parts` name the draw, e.g. (seed, "init") or (seed, "reinit"); `weight_stream` names
    the weights' generators within it (biases always use "bias").
    """
    check_init(init)
    check_bias_init(bias_init)
    scheme = INITIALIZERS[init]
    with torch.no_grad(), one_thread():
        for name, layer in model.named_modules():
            if not isinstance(layer, (nn.Linear, nn.Conv2d)):
                continue
            weight = torch.empty(layer.weight.shape)  # drawn on CPU: same values on every device
            scheme(weight, generator(*seed_parts, name, weight_stream))
            layer.weight.copy_(weight * scale)
            if layer.bias is not None:
                bias = torch.zeros(layer.bias.shape)
                if bias_init == "default":
                    _uniform(bias, generator(*seed_parts, name, "bias"), 1.0 / math.sqrt(fans(weight)[0]))
                layer.bias.copy_(bias)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def relative_lr_factors(model: nn.Module, state: dict) -> dict:
    """Per weight tensor, RMS(θ0) / Xavier normal's σ (lr_rule relative): Adam moves each weight by
    about lr a step whatever its size, so this gives every scheme Xavier's step relative to its
    weights. Biases keep the plain lr."""
    factors = {}
    for name, layer in model.named_modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            weight = state[f"{name}.weight"].double()
            fan_in, fan_out = fans(weight)
            factors[f"{name}.weight"] = float(weight.square().mean().sqrt()) / math.sqrt(2.0 / (fan_in + fan_out))
    return factors


def pytorch_default_draw(model: nn.Module, *seed_parts) -> dict:
    """The state PyTorch's constructor gives `model`, drawn apart from any scheme: what the 2020 code
    saved before applying the scheme, and restored at every reset (`rewind_target: pytorch_default`).

    Its weights come from generators of their own, so they are independent of the scheme's (as in
    the 2020 code, where the constructor drew first and the scheme drew next); its biases are the
    draw that bias_init "default" gives θ0 (the 2020 code left the constructor's biases in place).
    """
    return initialize(model, "pytorch_default", 1.0, "default", *seed_parts, weight_stream="pytorch-default-weight")


def weight_samples(model: nn.Module, inits, scale: float = 1.0, seed: int = 0):
    """Long table (init, layer, weight) of every weight each scheme draws for `model`."""
    frames = []
    for init in inits:
        state = initialize(model, init, scale, "default", seed, "init")
        for name, layer in model.named_modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                weights = state[f"{name}.weight"].flatten().numpy()
                frames.append(pd.DataFrame({"init": init, "layer": name, "weight": weights}))
    return pd.concat(frames, ignore_index=True)


def formula_table(names, model: nn.Module, scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Scheme, formula, and the standard deviation each scheme gives each layer of `model`."""
    stds = weight_samples(model, names, scale, seed).groupby(["init", "layer"], sort=False).weight.std().unstack()
    columns = {f"std {layer}": [f"{stds.loc[n, layer]:.3g}" for n in names] for layer in stds.columns}
    formulas = [formula(n).split(" (")[0].rstrip(".") for n in names]  # drop the source in parentheses
    return pd.DataFrame({"scheme": names, "formula": formulas, **columns})
