import pytest

from ticketlib.datasets import load_dataset
from ticketlib.protocols import make_run
from ticketlib.store import Store

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
