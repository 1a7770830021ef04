"""A grid: datasets × models × inits × scales × seeds × conditions under one protocol.

Runs that share a training setup form a cohort that trains round by round as stacks (imp.py).
A cohort's units (a ticket with its controls, which need its masks) are dealt out into tasks
that an executor runs (executors.py: local processes or Dask); on CPU each task trains with one
thread, and a ticket's numbers do not depend on its stack, so results depend neither on the
number of workers nor on the executor. Progress (ticket-steps) is read from small files each task
writes beside the store, wherever tasks run.
"""
import itertools
import os
import shutil
import time
import uuid
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from ticketlib.config import run_id
from ticketlib.data.datasets import load_dataset
from ticketlib.engine.train import budget
from ticketlib.errors import TicketError
from ticketlib.imp.conditions import CONDITIONS
from ticketlib.imp.executors import (
    POLL_SECONDS,
    check_executor,
    default_workers,
    run_tasks,
)
from ticketlib.imp.protocols import make_run
from ticketlib.imp.rounds import run_cohort, training_setup
from ticketlib.store.runs import Store


def expand_grid(datasets, models, inits, seeds, conditions=("ticket",), scales=(None,),
                protocol="frankle2019", **hyperparameters) -> list[dict]:
    """Every run config of the grid, each ticket before its controls; validates everything."""
    for name, values in (("datasets", datasets), ("models", models), ("inits", inits),
                         ("seeds", seeds), ("conditions", conditions), ("scales", scales)):
        if not values:
            raise TicketError(f"the grid needs at least one of {name}")
    ordered = sorted(set(conditions), key=lambda c: list(CONDITIONS).index(c) if c in CONDITIONS else -1)
    return [make_run(dataset, model, init, seed, protocol, condition, scale=scale, **hyperparameters)
            for dataset, model, init, scale, seed, condition
            in itertools.product(datasets, models, inits, scales, seeds, ordered)]


def spec_configs(spec: dict) -> list[dict]:
    """The run configs of one grid spec: checked settings (config.read) by name, axes and hyperparameters."""
    from ticketlib.config import Hyperparameters
    from ticketlib.nets.inits import resolve
    missing = [f"--{axis}" for axis in ("dataset", "model", "inits", "seeds") if spec.get(axis) is None]
    if missing:
        raise TicketError(f"ticketlib run needs {', '.join(missing)} (as flags or in --config)")
    hyperparameters = {k: v for k, v in spec.items() if k in Hyperparameters.__dataclass_fields__ and k != "scale"}
    return expand_grid(spec["dataset"], spec["model"], resolve(spec["inits"]), spec["seeds"],
                       spec.get("conditions") or ("ticket",), spec.get("scales") or (None,),
                       spec.get("protocol") or "frankle2019", **hyperparameters)


def file_configs(grid, flags: dict | None = None) -> list[dict]:
    """Every run config of a grid file (configs/NAME.yaml for a bare name), its sub-grids in order,
    each run once; `flags`: checked settings given beside it, over every sub-grid."""
    from ticketlib.config import grid_file, read_grid_file
    configs = {}
    for spec in read_grid_file(grid_file(grid)):
        for config in spec_configs({**spec, **(flags or {})}):
            configs.setdefault(run_id(config), config)
    return list(configs.values())


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def data_key(config: dict) -> tuple:
    return config["dataset"], config["num_samples"], config["val_size"], config["input_norm"]


def units(configs: list[dict]) -> list[list[dict]]:
    """Configs grouped by the ticket run they share, in grid order."""
    groups: dict[str, list[dict]] = {}
    for config in configs:
        groups.setdefault(run_id({**config, "condition": "ticket"}), []).append(config)
    return list(groups.values())


def tasks(configs: list[dict], workers: int) -> list[list[dict]]:
    """Each cohort's units dealt out into at most `workers` equal shares of configs."""
    cohorts: dict[str, list[list[dict]]] = {}
    for unit in units(configs):
        cohorts.setdefault(run_id(training_setup(unit[0])), []).append(unit)
    shares = []
    for group in cohorts.values():
        n = min(workers, len(group))
        shares += [[config for unit in group[i::n] for config in unit] for i in range(n)]
    return shares


def missing_rounds(configs, store: Store) -> int:
    return sum(not store.has_round(c, r) for c in configs for r in range(c["rounds"]))


def round_steps(config: dict, r: int, data) -> int:
    """Ticket-steps that round r of a run trains (a control's copied dense round: none)."""
    condition = CONDITIONS[config["condition"]]
    if r == 0 and config["condition"] != "ticket" and condition.shares_round_zero:
        return 0
    late = r > 0 and config["rewind_iteration"] and condition.late_rewind
    return budget(config, data) - (config["rewind_iteration"] if late else 0)


class StepCounter:
    """A task's ticket-steps so far, in `folder`/<pid>.steps (rewritten at most every POLL_SECONDS),
    where the grid's progress bar adds them up whatever executor runs the task; `poll()` after each."""

    def __init__(self, folder: Path | None, poll=None):
        self.path = folder / f"{os.getpid()}-{id(self)}.steps" if folder else None
        self.poll, self.done, self.written = poll or (lambda: None), 0, 0.0

    def __call__(self, steps: int) -> None:
        self.done += steps
        if self.path and time.monotonic() - self.written >= POLL_SECONDS:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(str(self.done))
            tmp.replace(self.path)
            self.written = time.monotonic()
        self.poll()


def run_task(configs: list[dict], store_root, device: str, data_root, progress: Path | None = None,
             poll=None) -> int:
    """Train one share of a cohort; returns rounds trained. Each ticket's unit (it and its controls)
    is locked in the store while it trains; a unit another process holds is left to it and waited
    for at the end (then trained only if that process left rounds undone)."""
    if device == "cpu":
        torch.set_num_threads(1)  # also in this process: thread count changes float sums
    else:
        torch.backends.cudnn.allow_tf32 = False  # fp32 convolutions in fp32 (cuDNN defaults to TF32)
    data = load_dataset(*data_key(configs[0]), root=data_root).to(device)
    store, counter = Store(store_root), StepCounter(progress, poll)
    (store.root / ".locks").mkdir(parents=True, exist_ok=True)
    locks = {key: FileLock(store.root / ".locks" / f"{key}.lock") for key in {unit_key(c) for c in configs}}
    trained = 0
    with ExitStack() as held:
        mine = {key for key, lock in locks.items() if try_lock(lock)}
        for key in mine:
            held.callback(locks[key].release)
        trained += run_cohort([c for c in configs if unit_key(c) in mine], store, data, device, counter) if mine else 0
        for key in sorted(set(locks) - mine):
            while not try_lock(locks[key], POLL_SECONDS):
                counter(0)
            held.callback(locks[key].release)
            trained += run_cohort([c for c in configs if unit_key(c) == key], store, data, device, counter)
    return trained


def unit_key(config: dict) -> str:
    return run_id({**config, "condition": "ticket"})


def try_lock(lock: FileLock, timeout: float = 0) -> bool:
    try:
        lock.acquire(timeout=timeout)
        return True
    except Timeout:
        return False


def run_grid(configs: list[dict], store: Store, device="auto", data_root="data", workers=None,
             progress=True, executor="local", scheduler=None) -> dict:
    """Run every config, reusing finished rounds; returns counts of trained rounds and diverged runs.

    Tasks run on `executor` (executors.py): local processes, or a Dask cluster at `scheduler`.
    """
    device = resolve_device(device)
    check_executor(executor, workers)
    workers = workers or default_workers(executor, scheduler, device)
    datasets = {key: load_dataset(*key, root=data_root) for key in {data_key(c) for c in configs}}  # checked first
    store_root, data_root = Path(store.root).resolve(), Path(data_root).resolve()  # as remote workers see them
    todo = [t for t in tasks(configs, workers) if missing_rounds(t, store)]
    total = sum(round_steps(c, r, datasets[data_key(c)]) for c in configs for r in range(c["rounds"])
                if not store.has_round(c, r))
    folder = store_root / ".progress" / uuid.uuid4().hex
    bar = StepProgress(folder, total, progress)
    threads = torch.get_num_threads()
    try:
        task = partial(run_task, store_root=store_root, device=device, data_root=data_root, progress=folder)
        trained = sum(run_tasks(task, todo, executor, workers, scheduler, bar.refresh))
        bar.finish()
    finally:
        torch.set_num_threads(threads)
        bar.close()
        shutil.rmtree(folder, ignore_errors=True)
    diverged = sum(any(run.metrics(r)["diverged"] for r in run.rounds()) for run in map(store.run, configs))
    return dict(runs=len(configs), trained=trained, diverged=diverged)


class StepProgress:
    """A progress bar of the grid's ticket-steps (iterations × tickets) with an ETA, from the tasks'
    step files (StepCounter), read at most every POLL_SECONDS."""

    def __init__(self, folder: Path, total: int, enabled: bool):
        self.folder, self.checked = folder, time.monotonic()
        self.bar = tqdm(total=total, unit="step", unit_scale=True, disable=not enabled, smoothing=0.05)

    def refresh(self) -> None:
        if time.monotonic() - self.checked >= POLL_SECONDS:
            done = 0
            for path in self.folder.glob("*.steps"):
                try:
                    done += int(path.read_text())
                except (OSError, ValueError):  # being replaced
                    continue
            self.bar.update(min(done, self.bar.total) - self.bar.n)
            self.checked = time.monotonic()

    def finish(self) -> None:
        """Every step is done (diverged runs stop early and leave some uncounted)."""
        self.bar.n = self.bar.total

    def close(self) -> None:
        self.bar.close()
