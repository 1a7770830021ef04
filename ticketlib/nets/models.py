"""Models, registered by name (`register_model`). Each declares its prunable layers and their kind.

`layer_kinds` maps a Linear/Conv2d module name to `conv`, `fc` or `output`; pruning rates are
given per kind (F&C prune the output layer at half the fc rate). `plan` lists the forward pass as
steps (linear, conv, act, pool, flatten), the one definition read both by `forward` and by the
engine that trains many copies at once (train.py): a new model is a `Planned` module built from
these steps.
"""
import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

from torch import nn

from ticketlib.errors import TicketError, unknown

ACTIVATIONS = {  # in place: the layer before needs only its input for backward; 0.05: the 2020 study
    "relu": lambda: nn.ReLU(inplace=True), "leaky_relu": lambda: nn.LeakyReLU(0.05, inplace=True)}
CONV_PLANS = {  # F&C's CIFAR-10 networks: 3×3 convs, "M" = 2×2 max-pool
    "conv2": [64, 64, "M"],
    "conv4": [64, 64, "M", 128, 128, "M"],
    "conv6": [64, 64, "M", 128, 128, "M", 256, 256, "M"],
}


class Planned(nn.Module):
    """A network whose forward pass is its `plan`: (step, layer name) pairs."""

    def forward(self, x):
        for step, name in self.plan:
            if step in ("linear", "conv"):
                x = self.get_submodule(name)(x)
            elif step == "act":
                x = self.act(x)
            elif step == "pool":
                x = nn.functional.max_pool2d(x, 2)
            else:  # flatten
                x = x.flatten(1)
        return x


def dense_plan(hidden: int) -> list:
    steps = [("flatten", None)]
    for i in range(hidden):
        steps += [("linear", f"hidden.{i}"), ("act", None)]
    return steps + [("linear", "out")]


class LeNet(Planned):
    """Fully connected: flattened input → hidden widths → classes."""

    def __init__(self, input_shape, num_classes, hidden=(300, 100), activation="relu"):
        super().__init__()
        widths = [math.prod(input_shape), *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.out = nn.Linear(widths[-1], num_classes)
        self.act = ACTIVATIONS[activation]()
        self.layer_kinds = {f"hidden.{i}": "fc" for i in range(len(hidden))} | {"out": "output"}
        self.plan = dense_plan(len(hidden))


class ConvNet(Planned):
    """F&C's Conv-2/4/6: 3×3 'same' convs and max-pools, then hidden fc layers, then classes."""

    def __init__(self, plan, input_shape, num_classes, hidden=(256, 256), activation="relu"):
        super().__init__()
        if len(input_shape) != 3:
            raise TicketError(f"conv models need image inputs C×H×W; this dataset's inputs are {tuple(input_shape)}")
        self.act = ACTIVATIONS[activation]()
        self.convs, self.plan = nn.ModuleList(), []
        channels = input_shape[0]
        for step in plan:
            if step == "M":
                self.plan.append(("pool", None))
            else:
                self.plan += [("conv", f"convs.{len(self.convs)}"), ("act", None)]
                self.convs.append(nn.Conv2d(channels, step, 3, padding=1))
                channels = step
        pools = plan.count("M")
        flat = channels * (input_shape[1] >> pools) * (input_shape[2] >> pools)
        widths = [flat, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.out = nn.Linear(widths[-1], num_classes)
        self.layer_kinds = ({f"convs.{i}": "conv" for i in range(len(self.convs))}
                            | {f"hidden.{i}": "fc" for i in range(len(hidden))} | {"out": "output"})
        self.plan += dense_plan(len(hidden))


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[..., Planned]  # (input_shape, num_classes, hidden, activation) → the network
    hidden: tuple                  # default widths of the hidden fully connected layers


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, hidden: tuple):
    """Register `build(input_shape, num_classes, hidden, activation)` under `name`."""
    def add(build):
        MODELS[name] = ModelSpec(build, tuple(hidden))
        return build
    return add


register_model("lenet_300_100", hidden=(300, 100))(LeNet)
register_model("mlp_8x100", hidden=(100,) * 8)(LeNet)  # deep and narrow: where signal through depth matters
for _name, _plan in CONV_PLANS.items():
    register_model(_name, hidden=(256, 256))(partial(ConvNet, _plan))


def check_model(name: str, activation: str = "relu") -> None:
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    if activation not in ACTIVATIONS:
        raise unknown("activation", activation, ACTIVATIONS)


def build_model(name, input_shape, num_classes, hidden=None, activation="relu") -> nn.Module:
    check_model(name, activation)
    return MODELS[name].build(input_shape, num_classes, tuple(hidden or MODELS[name].hidden), activation)


def prunable_tensors(model: nn.Module, prune_biases: bool) -> dict[str, str]:
    """Parameter name → layer kind for every tensor that pruning may touch."""
    tensors = {}
    for layer, kind in model.layer_kinds.items():
        tensors[f"{layer}.weight"] = kind
        if prune_biases:
            tensors[f"{layer}.bias"] = kind
    return tensors
