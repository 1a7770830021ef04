"""The same grid on every executor gives the same table: local processes, Dask LocalCluster."""
import pandas as pd
import pytest
from dask.distributed import LocalCluster
from grid_driver import grid

import ticketlib.imp.executors as executors
from ticketlib.errors import TicketError
from ticketlib.imp.export import load_results
from ticketlib.imp.grid import run_grid
from ticketlib.store.runs import Store


def table(store) -> pd.DataFrame:
    return load_results(store, grid()).sort_values(["run_id", "round", "iteration"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def local_table(tmp_path_factory, data_root):
    store = tmp_path_factory.mktemp("local") / "runs"
    counts = run_grid(grid(), Store(store), "cpu", data_root, workers=2, progress=False)
    assert counts["trained"] == len(grid()) * 4
    return table(store)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_table(tmp_path, data_root, local_table):
    store = tmp_path / "runs"
    counts = run_grid(grid(), Store(store), "cpu", data_root, workers=2, progress=False, executor="dask")
    assert counts["trained"] == len(grid()) * 4
    pd.testing.assert_frame_equal(table(store), local_table)


@pytest.mark.slow
def test_dask_scheduler_address_gives_the_local_table(tmp_path, data_root, local_table):
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        assert executors.default_workers("dask", address, "cpu") == 2  # the cluster's threads
        store = tmp_path / "runs"
        run_grid(grid(), Store(store), "cpu", data_root, progress=False, executor="dask", scheduler=address)
    pd.testing.assert_frame_equal(table(store), local_table)


def test_unreachable_scheduler_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(TicketError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        executors.default_workers("dask", "tcp://127.0.0.1:9", "cpu")


def failing_task(argument, poll=None):
    if argument == "bad":
        raise TicketError("this task failed")
    return 1


def test_a_failing_task_stops_the_grid_with_its_error():
    assert executors.run_tasks(failing_task, ["ok", "ok"]) == [1, 1]
    with pytest.raises(TicketError, match="this task failed"):
        executors.run_tasks(failing_task, ["ok", "bad", "ok"], workers=2)
