"""A grid: datasets × models × inits × scales × seeds × conditions under one protocol.

Runs that share a training setup form a cohort that trains round by round as stacks (imp.py).
A cohort's units (a ticket with its controls, which need its masks) are dealt out into tasks
that an executor runs (executors.py: local processes or Dask); on CPU each task trains with one
thread, and a ticket's numbers do not depend on its stack, so results depend neither on the
number of workers nor on the executor. Progress is read from the store, wherever tasks run.
"""
import itertools
import time
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ticketlib.data.datasets import load_dataset
from ticketlib.errors import TicketError
from ticketlib.imp.executors import POLL_SECONDS, check_executor, default_workers, run_tasks
from ticketlib.imp.rounds import run_cohort, training_setup
from ticketlib.imp.conditions import CONDITIONS
from ticketlib.imp.protocols import make_run
from ticketlib.store.runs import Store, run_id


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


def run_task(configs: list[dict], store_root, device: str, data_root, on_round=None) -> int:
    """Train one share of a cohort; returns rounds trained. `on_round()` follows each round."""
    if device == "cpu":
        torch.set_num_threads(1)  # also in this process: thread count changes float sums
    else:
        torch.backends.cudnn.allow_tf32 = False  # fp32 convolutions in fp32 (cuDNN defaults to TF32)
    data = load_dataset(*data_key(configs[0]), root=data_root).to(device)
    return run_cohort(configs, Store(store_root), data, device, on_round or (lambda: None))


def run_grid(configs: list[dict], store: Store, device="auto", data_root="data", workers=None,
             progress=True, executor="local", scheduler=None) -> dict:
    """Run every config, reusing finished rounds; returns counts of trained rounds and diverged runs.

    Tasks run on `executor` (executors.py): local processes, or a Dask cluster at `scheduler`.
    """
    device = resolve_device(device)
    check_executor(executor, workers)
    workers = workers or default_workers(executor, scheduler, device)
    for key in {data_key(c) for c in configs}:  # check (and generate) every dataset before any run
        load_dataset(*key, root=data_root)
    store_root, data_root = Path(store.root).resolve(), Path(data_root).resolve()  # as remote workers see them
    todo = [t for t in tasks(configs, workers) if missing_rounds(t, store)]
    bar = StoreProgress(configs, store, progress)
    threads = torch.get_num_threads()
    try:
        task = partial(run_task, store_root=store_root, device=device, data_root=data_root)
        trained = sum(run_tasks(task, todo, executor, workers, scheduler, bar.refresh))
    finally:
        torch.set_num_threads(threads)
        bar.close()
    diverged = sum(any(run.metrics(r)["diverged"] for r in run.rounds()) for run in map(store.run, configs))
    return dict(runs=len(configs), trained=trained, diverged=diverged)


class StoreProgress:
    """A progress bar of the grid's rounds, counted in the store at most every POLL_SECONDS."""

    def __init__(self, configs: list[dict], store: Store, enabled: bool):
        self.configs, self.store, self.checked = configs, store, time.monotonic()
        self.missing = missing_rounds(configs, store)
        self.bar = tqdm(total=self.missing, unit="round", disable=not enabled)

    def refresh(self, now=False) -> None:
        if now or time.monotonic() - self.checked >= POLL_SECONDS:
            self.bar.update(self.missing - missing_rounds(self.configs, self.store) - self.bar.n)
            self.checked = time.monotonic()

    def close(self) -> None:
        self.refresh(now=True)
        self.bar.close()

