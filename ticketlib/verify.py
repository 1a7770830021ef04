"""Retrain a sample of shipped runs from scratch and compare them with their shipped numbers.

Each sampled run (drawn with a seeded generator from the grids in results/) is trained again in a
temporary store, rounds 0 to a sampled round r (a control brings its ticket), and every
evaluation row of those rounds is compared with the shipped table: on the machine that made the
results they agree bit for bit; elsewhere (another CPU, a GPU) float summation differs, and the
rows must agree within TOLERANCE.
"""
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ticketlib.errors import TicketError
from ticketlib.imp.grid import run_grid
from ticketlib.analysis.results import MEASURES, RESULTS, grid_hash, load_grid, load_results
from ticketlib.store.runs import Store, run_id

TOLERANCE = {"accuracy": 0.01, "loss": 0.02}  # accuracies within 1 point; losses within 2% (relative)
COMPARED = [*MEASURES, "is_early_stop", "weights_remaining"]


@dataclass
class Check:
    grid: str
    run: str
    rounds: int
    identical: bool
    within: bool
    worst: str  # the largest difference, or ''


def compare(shipped: pd.DataFrame, again: pd.DataFrame) -> tuple[bool, bool, str]:
    """(identical, within tolerance, the largest difference) of two tables of the same rows."""
    if len(shipped) != len(again) or (shipped.iteration.to_numpy() != again.iteration.to_numpy()).any():
        return False, False, f"{len(again)} rows at other iterations than the shipped {len(shipped)}"
    identical, within, worst, largest = True, True, "", 0.0
    for column in COMPARED:
        a, b = shipped[column].to_numpy(dtype=float), again[column].to_numpy(dtype=float)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        if same.all():
            continue
        identical = False
        if column == "is_early_stop":
            within, worst = False, worst or "the early-stop row moved"
            continue
        if np.isnan(a[~same]).any() or np.isnan(b[~same]).any():
            within, worst = False, f"{column}: measured in one table only"
            continue
        delta = np.abs(a - b)[~same]
        scale = np.abs(a[~same]) if "loss" in column else 1.0
        limit = TOLERANCE["loss" if "loss" in column else "accuracy"]
        within &= bool((delta / scale <= limit).all()) if column != "weights_remaining" else False
        if delta.max() > largest:
            largest, worst = delta.max(), f"{column} by up to {delta.max():.3g}"
    return identical, within, worst


def verify(sample: int, seed: int = 0, results=RESULTS, configs_of=None, device="auto", data_root="data",
           on_check=lambda check: None) -> list[Check]:
    """Retrain `sample` shipped runs up to a random round each; `configs_of(grid)` gives a grid's run
    configs (from its parameter file)."""
    grids = sorted(p.parent.name for p in Path(results).glob("*/grid.json"))
    if not grids:
        raise TicketError(f"no exported grids in {results}")
    candidates = []
    for name in grids:
        grid = load_grid(name, results)
        configs = {run_id(c): c for c in configs_of(name)}
        if grid_hash(list(configs.values())) != grid.identity["grid_hash"]:
            raise TicketError(f"results/{name} were not exported from configs/{name}.yaml as it is now; "
                              f"export the grid again or restore its parameter file")
        last = grid.table.groupby("run_id")["round"].max()
        candidates += [(name, grid.table, configs[run], int(last[run])) for run in sorted(last.index)]
    rng = random.Random(seed)
    checks = []
    for name, table, config, last in rng.sample(candidates, min(sample, len(candidates))):
        rounds = rng.randint(0, last) + 1
        with tempfile.TemporaryDirectory() as store:
            run_grid([{**config, "rounds": rounds}], Store(store), device, data_root, workers=1, progress=False)
            again = load_results(store, [{**config, "rounds": rounds}])
        key = ["round", "iteration"]
        shipped = table[(table.run_id == run_id(config)) & (table["round"] < rounds)].sort_values(key)
        check = Check(name, run_id(config), rounds, *compare(shipped.reset_index(drop=True),
                                                            again.sort_values(key).reset_index(drop=True)))
        on_check(check)
        checks.append(check)
    return checks
