import pytest

from ticketlib.data.datasets import load_dataset
from ticketlib.imp.protocols import make_run
from ticketlib.store.runs import Store

SMALL = dict(num_samples=1000, iterations=60, eval_every=20, rounds=3, hidden=[32, 16])


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def small_data(data_root):
    """MNIST-1D at 1000 samples: 800 train (720 + 80 validation), 200 test."""
    return load_dataset("mnist1d", num_samples=1000, val_size=80, root=data_root)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "runs")


@pytest.fixture
def small_config():
    def make(init="xavier_normal", seed=0, condition="ticket", protocol="frankle2019", **overrides):
        return make_run("mnist1d", "lenet_300_100", init, seed, protocol, condition,
                        **{**SMALL, "val_size": 80, **overrides})
    return make


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory, data_root):
    """A tiny grid trained once and exported as results/tiny/: 2 inits × 2 seeds, tickets and random
    pruning, 3 rounds. Returns (folder holding runs/ and results/, configs)."""
    from ticketlib.imp.export import export_grid
    from ticketlib.imp.grid import expand_grid, run_grid

    root = tmp_path_factory.mktemp("tiny")
    configs = expand_grid(["mnist1d"], ["lenet_300_100"], ["xavier_normal", "lecun_uniform"], [0, 1],
                          ["ticket", "random"], **{**SMALL, "val_size": 80})
    run_grid(configs, Store(root / "runs"), "cpu", data_root=data_root, workers=1, progress=False)
    export_grid("tiny", configs, root / "runs", root / "results", data_root)
    return root, configs
