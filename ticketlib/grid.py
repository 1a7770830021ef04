"""A grid: datasets × models × inits × scales × seeds × conditions under one protocol.

Runs that share a training setup form a cohort that trains round by round as stacks (imp.py).
A cohort's units (a ticket with its controls, which need its masks) are dealt out to worker
processes; on CPU each worker trains with one thread, and a ticket's numbers do not depend on
its stack, so results do not depend on how many workers there are.
"""
import itertools
import multiprocessing
import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from queue import Empty

import pandas as pd
import torch
from tqdm.auto import tqdm

from .datasets import load_dataset
from .errors import TicketError
from .imp import run_cohort, training_setup
from .protocols import CONDITIONS, make_run
from .results import load_results
from .store import Store, run_id


def expand_grid(datasets, models, inits, seeds, conditions=("ticket",), scales=(None,),
                protocol="frankle2019", **hyperparameters) -> list[dict]:
    """Every run config of the grid, each ticket before its controls; validates everything."""
    for name, values in (("datasets", datasets), ("models", models), ("inits", inits),
                         ("seeds", seeds), ("conditions", conditions), ("scales", scales)):
        if not values:
            raise TicketError(f"the grid needs at least one of {name}")
    ordered = sorted(set(conditions), key=lambda c: CONDITIONS.index(c) if c in CONDITIONS else -1)
    return [make_run(dataset, model, init, seed, protocol, condition, scale=scale, **hyperparameters)
            for dataset, model, init, scale, seed, condition
            in itertools.product(datasets, models, inits, scales, seeds, ordered)]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def data_key(config: dict) -> tuple:
    return config["dataset"], config["num_samples"], config["val_size"]


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
        torch.set_num_threads(1)
    data = load_dataset(*data_key(configs[0]), root=data_root).to(device)
    return run_cohort(configs, Store(store_root), data, device, on_round or _report_round)


_progress = None  # a worker process's queue to the progress bar


def _set_progress(queue) -> None:
    global _progress
    _progress = queue


def _report_round() -> None:
    _progress.put(1)


def run_grid(configs: list[dict], store: Store, device="auto", data_root="data", workers=None,
             progress=True) -> dict:
    """Run every config, reusing finished rounds; returns counts of trained rounds and diverged runs."""
    device = resolve_device(device)
    workers = workers or (os.cpu_count() if device == "cpu" else 1)
    if workers < 1:
        raise TicketError(f"workers must be a positive integer; got {workers}")
    for key in {data_key(c) for c in configs}:  # check (and generate) every dataset before any run
        load_dataset(*key, root=data_root)
    todo = [t for t in tasks(configs, workers) if missing_rounds(t, store)]
    bar = tqdm(total=missing_rounds(configs, store), unit="round", disable=not progress)
    trained = 0
    if workers == 1 or len(todo) <= 1:
        threads = torch.get_num_threads()
        for task in todo:
            trained += run_task(task, store.root, device, data_root, on_round=lambda: bar.update(1))
        torch.set_num_threads(threads)
    else:
        context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
        queue = context.Queue()  # handed to the workers as they start: a queue cannot be a task argument
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context, initializer=_set_progress,
                                 initargs=(queue,)) as pool:
            pending = [pool.submit(run_task, task, store.root, device, data_root) for task in todo]
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                _drain(queue, bar)
                trained += sum(future.result() for future in finished)  # re-raises a worker's error
        _drain(queue, bar)
    bar.close()
    diverged = sum(any(run.metrics(r)["diverged"] for r in run.rounds()) for run in map(store.run, configs))
    return dict(runs=len(configs), trained=trained, diverged=diverged)


def _drain(queue, bar) -> None:
    while True:
        try:
            bar.update(queue.get_nowait())
        except Empty:
            return


def run_and_load(configs: list[dict], store="data/runs", **options) -> pd.DataFrame:
    """Run (or reuse) a grid and return its tidy table: what a notebook calls."""
    run_grid(configs, Store(store), **options)
    return load_results(store, configs)
