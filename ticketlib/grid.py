"""A grid: datasets × models × inits × scales × seeds × conditions under one protocol.

The grid's unit of work is one ticket run with its controls (they need its masks); units are
independent, so they run in worker processes. On CPU each worker trains with one thread, so
results do not depend on how many workers there are.
"""
import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import pandas as pd
import torch
from tqdm.auto import tqdm

from .datasets import load_dataset
from .errors import TicketError
from .imp import run_imp
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


def missing_rounds(configs, store: Store) -> int:
    return sum(not store.has_round(c, r) for c in configs for r in range(c["rounds"]))


def run_unit(unit: list[dict], store_root, device: str, data_root, on_round=lambda: None) -> int:
    """Train one unit (a ticket and its controls); returns rounds trained."""
    if device == "cpu":
        torch.set_num_threads(1)
    data = load_dataset(*data_key(unit[0]), root=data_root).to(device)
    return sum(run_imp(config, Store(store_root), data, device, on_round) for config in unit)


def run_grid(configs: list[dict], store: Store, device="auto", data_root="data", workers=None,
             progress=True) -> dict:
    """Run every config, reusing finished rounds; returns counts of trained rounds and diverged runs."""
    device = resolve_device(device)
    workers = workers or (os.cpu_count() if device == "cpu" else 1)
    if workers < 1:
        raise TicketError(f"workers must be a positive integer; got {workers}")
    for key in {data_key(c) for c in configs}:  # check (and generate) every dataset before any run
        load_dataset(*key, root=data_root)
    todo = [u for u in units(configs) if missing_rounds(u, store)]
    bar = tqdm(total=missing_rounds(configs, store), unit="round", disable=not progress)
    trained = 0
    if workers == 1 or len(todo) <= 1:
        threads = torch.get_num_threads()
        for unit in todo:
            bar.set_postfix_str(f"{unit[0]['init']} seed={unit[0]['seed']}")
            trained += run_unit(unit, store.root, device, data_root, on_round=bar.update)
        torch.set_num_threads(threads)
    else:
        context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            futures = [pool.submit(run_unit, unit, store.root, device, data_root) for unit in todo]
            for future in as_completed(futures):
                done = future.result()
                trained += done
                bar.update(done)
    bar.close()
    diverged = sum(any(run.metrics(r)["diverged"] for r in run.rounds()) for run in map(store.run, configs))
    return dict(runs=len(configs), trained=trained, diverged=diverged)


def run_and_load(configs: list[dict], store="data/runs", **options) -> pd.DataFrame:
    """Run (or reuse) a grid and return its tidy table: what a notebook calls."""
    run_grid(configs, Store(store), **options)
    return load_results(store, configs)
