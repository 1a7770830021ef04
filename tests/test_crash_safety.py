"""Kill a grid anywhere, rerun it, lose nothing: SIGKILL, concurrent writers, corrupt files."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from grid_driver import GRID, grid

from ticketlib.cli import main
from ticketlib.imp.export import load_results
from ticketlib.imp.grid import run_grid
from ticketlib.store.runs import CorruptStore, Run, Store

pytestmark = pytest.mark.slow  # grids killed and resumed in subprocesses

DRIVER = Path(__file__).with_name("grid_driver.py")
ROUNDS = len(grid()) * GRID["rounds"]


def start(store, data_root, *flags) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(DRIVER.parent)}
    return subprocess.Popen([sys.executable, str(DRIVER), str(store), str(data_root), *flags], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def kill_when(process, ready, timeout=120) -> None:
    """SIGKILL the process and its workers as soon as ready() holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the grid ended before the kill point: {process.communicate()}"
        assert time.monotonic() < deadline, "kill point not reached"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def rounds_done(store) -> list[Path]:
    return sorted(Path(store).glob("*/round_*"))


def partial_writes(store) -> list[Path]:
    return [p for p in Path(store).glob("*/.round_*") if len(list(p.iterdir())) >= 2]


def finished_state(store) -> dict:
    """Each finished round folder's checksum file identity: unchanged means not rewritten."""
    return {str(p): (p / "sha256.json").stat().st_ino for p in rounds_done(store)}


def table(store) -> pd.DataFrame:
    return load_results(store, grid()).sort_values(["run_id", "round", "iteration"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root):
    store = tmp_path_factory.mktemp("reference") / "runs"
    run_grid(grid(), Store(store), "cpu", data_root, 1, progress=False)
    return table(store)


@pytest.mark.parametrize("point,flags,ready", [
    ("during training, in this process", [], lambda store: len(rounds_done(store)) >= 2),
    ("during training, in worker processes", ["--workers", "2"], lambda store: len(rounds_done(store)) >= 6),
    ("during a store write", ["--slow-writes"], lambda store: len(rounds_done(store)) >= 3 and partial_writes(store)),
], ids=["training", "training-workers", "store-write"])
def test_killed_grid_resumes_with_identical_results(point, flags, ready, tmp_path, data_root, reference):
    store = tmp_path / "runs"
    kill_when(start(store, data_root, *flags), lambda: ready(store))
    before = finished_state(store)
    assert 0 < len(before) < ROUNDS, point
    for folder in map(Path, before):  # what survived the kill is whole
        assert Run(folder.parent, {}).metrics(int(folder.name[6:]))["rows"]
    counts = run_grid(grid(), Store(store), "cpu", data_root, 1, progress=False)
    assert counts["trained"] == ROUNDS - len(before)  # finished rounds were not retrained...
    assert {k: v for k, v in finished_state(store).items() if k in before} == before  # ...nor rewritten
    pd.testing.assert_frame_equal(table(store), reference)


def live_group_members(group: int) -> list[int]:
    """Processes of a process group that are not zombies (read from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers follow their parent on Linux")
def test_workers_end_when_the_grid_process_is_killed(tmp_path, data_root):
    store = tmp_path / "runs"
    process = start(store, data_root, "--workers", "2")
    deadline = time.monotonic() + 120
    while len(live_group_members(process.pid)) < 3 or not rounds_done(store):  # the grid and its two workers
        assert process.poll() is None and time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # the grid's process only, as `kill` does
    process.wait()
    deadline = time.monotonic() + 10
    while live_group_members(process.pid):
        assert time.monotonic() < deadline, f"workers outlived the grid: {live_group_members(process.pid)}"
        time.sleep(0.05)


def test_two_processes_on_one_store_train_each_round_once(tmp_path, data_root, reference):
    store = tmp_path / "runs"
    first, second = start(store, data_root), start(store, data_root)
    trained = 0
    for process in (first, second):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()
        trained += int(out.decode().split()[-1])
    assert trained == ROUNDS  # a unit one process trains, the other waits for (a lock per unit)
    assert len(rounds_done(store)) == ROUNDS and not list(store.glob("*/.round_*"))
    pd.testing.assert_frame_equal(table(store), reference)


def cli_run(tmp_path, data_root) -> subprocess.Popen:
    """The grid through `ticketlib run` with two workers, in its own process group."""
    spec = {"dataset": "mnist1d", "model": "lenet_300_100", "inits": GRID["inits"], "seeds": GRID["seeds"],
            "conditions": GRID["conditions"], **{k: GRID[k] for k in ("rounds", "iterations", "eval_every",
                                                                       "num_samples", "val_size", "hidden")}}
    (tmp_path / "grid.yaml").write_text(json.dumps(spec))  # JSON is YAML
    return subprocess.Popen([sys.executable, "-m", "ticketlib", "run", "--config", str(tmp_path / "grid.yaml"),
                             "--store", str(tmp_path / "runs"), "--data-root", str(data_root), "--workers", "2",
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a background job inherits it ignored


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers follow their parent on Linux")
@pytest.mark.parametrize("signum,code,said", [(signal.SIGINT, 130, "ticketlib: stopped; rerun the same command"),
                                              (signal.SIGTERM, 143, "ticketlib: terminated; rerun the same command")],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_main_process_stops_the_workers_at_once_and_says_how_to_resume(
        signum, code, said, tmp_path, data_root, reference):
    process = cli_run(tmp_path, data_root)
    deadline = time.monotonic() + 120
    while len(live_group_members(process.pid)) < 3 or not rounds_done(tmp_path / "runs"):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    os.kill(process.pid, signum)  # the main process only, as `timeout`, `kill` or a batch scheduler sends it
    out, err = process.communicate(timeout=20)
    assert process.returncode == code
    assert err.decode().strip().splitlines() == [said + " to resume (finished rounds are kept)"], err.decode()
    deadline = time.monotonic() + 10
    while live_group_members(process.pid):
        assert time.monotonic() < deadline, f"workers outlived the grid: {live_group_members(process.pid)}"
        time.sleep(0.05)
    again = cli_run(tmp_path, data_root)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()
    pd.testing.assert_frame_equal(table(tmp_path / "runs"), reference)


@pytest.fixture
def finished_store(tmp_path, data_root):
    store = tmp_path / "runs"
    run_grid(grid(), Store(store), "cpu", data_root, 1, progress=False)
    return store


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[:len(data) // 2])
    elif how == "flip":
        path.write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    else:
        path.unlink()


@pytest.mark.parametrize("name,how,read", [
    ("weights.pt", "truncate", lambda run: run.tensors(1, "weights")),
    ("mask.pt", "flip", lambda run: run.tensors(1, "mask")),
    ("metrics.json", "flip", lambda run: run.metrics(1)),
    ("sha256.json", "delete", lambda run: run.tensors(1, "weights")),
])
def test_damaged_round_file_is_named_never_read(finished_store, name, how, read):
    run = Store(finished_store).run(grid()[0])
    damage(run.round_path(1) / name, how)
    folder = re.escape(str(run.round_path(1)))
    with pytest.raises(CorruptStore, match=f"^{folder}/{re.escape(name)} .*; delete {folder} to recompute it$"):
        read(run)


def test_damaged_files_stop_the_grid_and_the_table(finished_store, data_root):
    run = Store(finished_store).run(grid()[0])
    damage(run.round_path(3) / "weights.pt", "flip")  # the next round prunes these weights
    with pytest.raises(CorruptStore, match=re.escape(str(run.round_path(3) / "weights.pt"))):
        run_grid([{**grid()[0], "rounds": 5}], Store(finished_store), "cpu", data_root, 1, progress=False)
    damage(run.round_path(0) / "metrics.json", "truncate")
    with pytest.raises(CorruptStore, match=re.escape(str(run.round_path(0) / "metrics.json"))):
        load_results(finished_store, grid())


def test_deleting_the_named_folder_recomputes_it(finished_store, data_root):
    run = Store(finished_store).run(grid()[0])
    before = run.tensors(2, "weights")
    damage(run.round_path(2) / "weights.pt", "flip")
    with pytest.raises(CorruptStore) as error:
        run.tensors(2, "weights")
    folder = str(error.value).rsplit("delete ", 1)[1].removesuffix(" to recompute it")
    subprocess.run(["rm", "-r", folder], check=True)
    assert run_grid(grid(), Store(finished_store), "cpu", data_root, 1, progress=False)["trained"] == 1
    assert all(torch.equal(v, run.tensors(2, "weights")[k]) for k, v in before.items())


def test_edited_config_and_corrupt_store_through_the_cli(finished_store, capsys):
    config = next(finished_store.glob("*/config.json"))
    config.write_text(json.dumps({**json.loads(config.read_text()), "lr": 0.5}))
    assert main(["results", "--store", str(finished_store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{config} does not hash to its folder's name" in err
