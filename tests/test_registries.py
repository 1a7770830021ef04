"""Whatever is registered passes the same checks, and the README's recipes for adding a model, a
dataset, a condition, a protocol and an executor work end to end."""
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from ticketlib.data import datasets
from ticketlib.engine.train import Job, Stack, sparse_layers
from ticketlib.imp import conditions, executors, protocols
from ticketlib.imp.export import load_results
from ticketlib.imp.grid import expand_grid, run_grid
from ticketlib.nets import models
from ticketlib.nets.inits import initialize
from ticketlib.nets.models import (
    MODELS,
    Planned,
    build_model,
    dense_plan,
    prunable_tensors,
)
from ticketlib.nets.pruning import full_mask, kept
from ticketlib.store.runs import Store


def input_shape(name: str) -> tuple:
    return (3, 16, 16) if build_model(name, (3, 16, 16), 10).plan[0][0] == "conv" else (40,)


@pytest.mark.parametrize("density", [1.0, 0.1], ids=["dense", "sparse"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_computes_its_plain_forward_when_stacked(name, density):
    """One definition of the forward pass: the engine's stacked steps (dense and block-sparse)
    give each ticket what its own nn.Module gives."""
    shape = input_shape(name)
    model = build_model(name, shape, 10, (32, 16))
    kinds = prunable_tensors(model, False)
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(0)
    jobs = []
    for seed in (0, 1):
        mask = full_mask({n: params[n] for n in kinds})
        mask["hidden.0.weight"] = torch.rand(params["hidden.0.weight"].shape, generator=gen) < density
        jobs.append(Job(initialize(model, "kaiming_normal", 1.0, "default", seed, "init"), mask, seed))
    assert sparse_layers(model, jobs[0].mask) == (("hidden.0",) if density < 1 else ())
    stack = Stack(model, jobs, "cpu")
    x = torch.randn(5, *shape, generator=gen)
    with torch.no_grad():
        stacked = stack.forward(stack.inputs(x[None]).expand(2, *stack.inputs(x[None]).shape[1:]))
        for k, job in enumerate(jobs):
            model.load_state_dict({n: v * job.mask[n] if n in job.mask else v for n, v in job.state.items()})
            torch.testing.assert_close(stacked[k].T, model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(datasets.DATASETS))
def test_every_dataset_declares_its_validation_split(name):
    spec = datasets.DATASETS[name]
    size = spec.val_size(spec.default_samples)
    assert isinstance(size, int) and size > 0 and callable(spec.arrays)


@pytest.mark.parametrize("name", list(conditions.CONDITIONS))
def test_every_condition_trains_beside_its_ticket(name, small_config, small_data, tmp_path):
    from ticketlib.imp.rounds import run_cohort
    config = small_config(condition=name, rounds=2, iterations=20, eval_every=10)
    store = Store(tmp_path / "runs")
    run_cohort([config], store, small_data)
    run, ticket = store.run(config), store.run(small_config(rounds=2, iterations=20, eval_every=10))
    assert run.rounds() == ticket.rounds() == [0, 1]
    mask, ticket_mask = run.tensors(1, "mask"), ticket.tensors(1, "mask")
    assert {n: (m.dtype, m.shape) for n, m in mask.items()} == {n: (m.dtype, m.shape) for n, m in ticket_mask.items()}


@pytest.mark.parametrize("name", list(protocols.PROTOCOLS))
def test_every_protocol_resolves_for_every_model(name):
    for model in MODELS:
        dataset = "mnist1d" if model == "lenet_300_100" else "cifar10"
        config = protocols.make_run(dataset, model, "xavier_normal", 0, name)
        assert config["protocol"] == name and config["model"] == model


@pytest.mark.parametrize("name", list(executors.EXECUTORS))
def test_every_executor_returns_each_result_in_order(name):
    assert executors.run_tasks(partial(pow, exp=2), [1, 2, 3], name, workers=2) == [1, 4, 9]


def blobs(num_samples, root):
    """Two Gaussian blobs in 8 dimensions: a dataset is four arrays."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, num_samples)
    x = (rng.normal(size=(num_samples, 8)) + 2.0 * y[:, None]).astype(np.float32)
    split = num_samples * 4 // 5
    return x[:split], y[:split], x[split:], y[split:]


class OneHidden(Planned):
    """A one-hidden-layer perceptron: a model is a Planned module with layer kinds."""

    def __init__(self, input_shape, num_classes, hidden, activation):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(input_shape[0], hidden[0])])
        self.out = nn.Linear(hidden[0], num_classes)
        self.act = models.ACTIVATIONS[activation]()
        self.layer_kinds = {"hidden.0": "fc", "out": "output"}
        self.plan = dense_plan(1)


def smallest_weights(rnd):
    """Keep the ticket's count of the smallest trained weights (a control in the spirit of Zhou et al.)."""
    weights, counts = rnd.previous("weights"), kept(rnd.ticket_mask)
    mask = {}
    for name, count in counts.items():
        order = weights[name].abs().flatten().argsort()
        mask[name] = torch.zeros(weights[name].numel(), dtype=torch.bool)
        mask[name][order[:count]] = True
        mask[name] = mask[name].view_as(weights[name])
    return mask


def serially(task, arguments, workers, scheduler, poll):
    return [task(argument, poll=poll) for argument in arguments]


def test_the_readme_recipes_extend_the_library(monkeypatch, tmp_path):
    monkeypatch.setitem(datasets.DATASETS, "blobs", datasets.DatasetSpec(blobs, lambda n: n // 10, 500))
    monkeypatch.setitem(models.MODELS, "one_hidden", models.ModelSpec(OneHidden, (16,)))
    monkeypatch.setitem(conditions.CONDITIONS, "smallest", conditions.Condition(smallest_weights))
    monkeypatch.setitem(executors.EXECUTORS, "serial", serially)
    monkeypatch.setattr(protocols, "PROTOCOLS", dict(protocols.PROTOCOLS))
    monkeypatch.setattr(protocols, "MODEL_DEFAULTS", dict(protocols.MODEL_DEFAULTS))
    protocols.register_protocol("quick", dict(protocols.FRANKLE2019, lr=3e-3, iterations=40, eval_every=20))

    configs = expand_grid(["blobs"], ["one_hidden"], ["xavier_normal"], [0, 1], ["ticket", "smallest"],
                          protocol="quick", rounds=2)
    counts = run_grid(configs, Store(tmp_path / "runs"), "cpu", data_root=tmp_path, workers=1, progress=False,
                      executor="serial")
    assert counts == dict(runs=4, trained=8, diverged=0)
    table = load_results(tmp_path / "runs")
    assert set(table.condition) == {"ticket", "smallest"} and (table.protocol == "quick").all()
    stops = table[table.is_early_stop & (table["round"] == 0)]
    assert stops.test_acc.min() > 0.9  # the blobs are easy
    with pytest.raises(Exception, match="protocol 'bad': lacks"):
        protocols.register_protocol("bad", dict(lr=1e-3))


def test_the_names_analysis_orders_by_are_the_registries():
    from ticketlib import names
    from ticketlib.nets.inits import INITIALIZERS
    assert names.SCHEMES == list(INITIALIZERS)
    assert names.CONDITIONS == list(conditions.CONDITIONS)
    assert sorted(n for family in names.FAMILIES.values() for n in family) == sorted(INITIALIZERS)


def test_analysis_and_the_paper_import_no_torch():
    """Reading results, statistics, tables, figures and the paper build need no torch; nor does the CLI to start."""
    import subprocess
    import sys
    code = ("import sys; import ticketlib.analysis.results, ticketlib.analysis.stats, ticketlib.analysis.report, "
            "ticketlib.analysis.figures, ticketlib.paper.build, ticketlib.paper.artefacts, ticketlib.cli, ticketlib.config; "
            "print('torch' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"


def test_every_condition_has_a_colour_distinct_from_those_it_is_drawn_beside():
    from ticketlib.analysis.figures import palette
    groups = [["ticket", "reinit", "random"], ["ticket", "copy"], ["ticket", "sign_kept", "random_signs", "shuffled", "rescaled"],
              ["ticket", "init_magnitude", "snip", "grasp", "synflow"],
              ["ticket", "init_magnitude_global", "snip_global", "grasp_global", "synflow_global"]]
    assert sorted({c for g in groups for c in g}) == sorted(conditions.CONDITIONS)
    for group in groups:
        colours = palette(group)
        assert len(set(colours.values())) == len(group), group


def test_initializer_colours_are_distinct_and_the_unpaired_schemes_are_not_pale():
    from matplotlib.colors import to_rgb

    from ticketlib.analysis.figures import palette
    from ticketlib.names import SCHEMES
    colours = palette(list(SCHEMES))
    assert len({to_rgb(c) for c in colours.values()}) == len(SCHEMES)
    def luminance(colour):  # WCAG relative luminance: white 1, black 0
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    for name in ("orthogonal", "truncated_normal", "signed_constant"):  # no twin to be read beside
        assert luminance(colours[name]) < 0.45, name
