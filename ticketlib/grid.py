"""A grid: datasets × models × inits × scales × seeds × conditions under one protocol."""
import itertools

import torch
from tqdm.auto import tqdm

from .datasets import load_dataset
from .errors import TicketError
from .imp import run_imp
from .protocols import CONDITIONS, make_run
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


def rounds_to_train(configs, store: Store) -> int:
    missing = 0
    for config in configs:
        path = store.root / run_id(config)
        missing += sum(not (path / f"round_{r:03d}").is_dir() for r in range(config["rounds"]))
    return missing


def run_grid(configs: list[dict], store: Store, device="auto", data_root="data", progress=True) -> dict:
    """Run every config, reusing finished rounds; returns counts of trained rounds and diverged runs."""
    device = resolve_device(device)
    datasets = {}
    for config in configs:  # load (and check) every dataset before any run starts
        key = (config["dataset"], config["num_samples"], config["val_size"])
        if key not in datasets:
            datasets[key] = load_dataset(*key, root=data_root).to(device)
    bar = tqdm(total=rounds_to_train(configs, store), unit="round", disable=not progress)
    trained = 0
    for config in configs:
        key = (config["dataset"], config["num_samples"], config["val_size"])
        bar.set_postfix_str(f"{config['init']} seed={config['seed']} {config['condition']}")
        trained += run_imp(config, store, datasets[key], device, on_round=lambda: bar.update())
    bar.close()
    diverged = sum(any(run.metrics(r)["diverged"] for r in run.rounds())
                   for run in map(store.run, configs))
    return dict(runs=len(configs), trained=trained, diverged=diverged)
