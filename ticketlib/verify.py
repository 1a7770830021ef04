"""Retrain a sample of shipped runs from scratch and check them against their shipped numbers.

Each sampled run (drawn with a seeded generator from the grids in results/) is trained again in a
temporary store, rounds 0 to a sampled round r (a control brings its ticket). Where this machine
is of the kind that made the grid (engine/machine.py: CPU model, vector ISA, torch version,
device), every evaluation row must agree bit for bit. Elsewhere float sums differ and
trajectories part, so the check is the one the paper's numbers need, at the level that gives a
run's rounds together a 99% chance (Bonferroni: 1 − 0.01 / rounds each; one 99% interval per
round would fail a plausible run of 19 rounds one time in six): at every round the retrained
early-stop test accuracy lies in the prediction interval of the shipped seeds of its setup
(mean ± t·s·√(1 + 1/n)), and the setup's mean over seeds with the retrained value in place of the
shipped one stays inside the interval of that mean (mean ± t·s/√n). s is the larger of the
round's SD over seeds and the setup's SD pooled over its rounds: three seeds that happen to agree
closely at one round would otherwise promise more than the study's spread.
"""
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ticketlib.analysis.results import (
    MEASURES,
    RESULTS,
    grid_hash,
    load_grid,
    setup_columns,
)
from ticketlib.config import run_id
from ticketlib.errors import TicketError

PREDICTION = 0.99  # the chance that a plausible retrained run falls in its intervals at all its rounds
COMPARED = [*MEASURES, "is_early_stop", "weights_remaining"]
BITS, INTERVALS = "bit for bit", "within the shipped seeds' intervals"


@dataclass
class Check:
    grid: str
    run: str
    rounds: int
    kind: str      # BITS or INTERVALS: which agreement was checked
    passed: bool
    detail: str    # what moved, or where it fell

    @property
    def verdict(self) -> str:
        return f"{'agrees' if self.passed else 'DIFFERS'} {self.kind}{': ' + self.detail if self.detail else ''}"


def differences(shipped: pd.DataFrame, again: pd.DataFrame) -> str:
    """'' if two tables of one run's rows are identical, else the first column that differs and by how much."""
    if len(shipped) != len(again) or (shipped.iteration.to_numpy() != again.iteration.to_numpy()).any():
        return f"{len(again)} rows at other iterations than the shipped {len(shipped)}"
    for column in COMPARED:
        a, b = shipped[column].to_numpy(dtype=float), again[column].to_numpy(dtype=float)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            return f"{column} differs in {int((~same).sum())} rows (by up to {np.nanmax(np.abs(a - b)[~same]):.3g})"
    return ""


def prediction_interval(values, level: float = PREDICTION, sd: float | None = None) -> tuple[float, float]:
    """Where one more draw of `values`' population falls with probability `level` (Student t); `sd`
    in place of the values' own SD where a better estimate is known."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return -np.inf, np.inf
    half = scipy_stats.t.ppf((1 + level) / 2, n - 1) * (values.std(ddof=1) if sd is None else sd) * np.sqrt(1 + 1 / n)
    return values.mean() - half, values.mean() + half


def statistical_agreement(table: pd.DataFrame, run: str, again: pd.DataFrame, rounds: int) -> tuple[bool, str]:
    """The interval check of one retrained run (its rows `again`, rounds 0 to `rounds` − 1) against
    its grid's shipped `table`."""
    stops = table[table.is_early_stop.astype(bool)]
    setup = [c for c in setup_columns(table) if table[c].nunique(dropna=False) > 1]
    mine = table[table.run_id == run].iloc[0][setup].astype(str)
    peers = stops[(stops[setup].astype(str) == mine).all(axis=1)] if setup else stops
    retrained = again[again.is_early_stop.astype(bool)].set_index("round").test_acc
    shipped_rounds = {r for r in table[table.run_id == run]["round"] if r < rounds}
    if set(retrained.index) != shipped_rounds:
        return False, f"rounds {sorted(retrained.index)} retrained where {sorted(shipped_rounds)} were shipped (a divergence)"
    level = 1 - (1 - PREDICTION) / max(len(retrained), 1)
    pooled = np.sqrt(peers.groupby("round").test_acc.var(ddof=1).mean())
    for r, value in retrained.items():
        seeds = peers[peers["round"] == r].test_acc
        n = len(seeds)
        if n < 2:
            continue
        mean, sd = seeds.mean(), max(seeds.std(ddof=1), pooled)
        low, high = prediction_interval(seeds, level, sd)
        if not low <= value <= high:
            return False, (f"round {r}: test accuracy {value:.4f} outside the {level:.2%} prediction interval "
                           f"[{low:.4f}, {high:.4f}] of the {n} shipped seeds ({PREDICTION:.0%} over "
                           f"{len(retrained)} rounds)")
        replaced = seeds.where(peers[peers["round"] == r].run_id != run, value).mean()
        half = scipy_stats.t.ppf((1 + level) / 2, n - 1) * sd / np.sqrt(n)
        if abs(replaced - mean) > half:
            return False, (f"round {r}: the setup's mean moves to {replaced:.4f}, outside its {level:.2%} interval "
                           f"[{mean - half:.4f}, {mean + half:.4f}]")
    return True, f"{len(retrained)} rounds"


def machine_kinds(identity: dict) -> set:
    from ticketlib.engine.machine import kind
    return {kind(entry["machine"]) if isinstance(entry["machine"], dict) else None
            for entry in identity.get("made_on", [{"machine": "unrecorded"}])}


def verify(sample: int, seed: int = 0, results=RESULTS, configs_of=None, device="auto", data_root="data",
           on_check=lambda check: None) -> list[Check]:
    """Retrain `sample` shipped runs up to a random round each; `configs_of(grid)` gives a grid's run
    configs (from its grid file)."""
    from ticketlib.engine.machine import kind, machine
    from ticketlib.imp.export import load_results
    from ticketlib.imp.grid import resolve_device, run_grid
    from ticketlib.store.runs import Store

    grids = sorted(p.parent.name for p in Path(results).glob("*/grid.json"))
    if not grids:
        raise TicketError(f"no exported grids in {results}")
    candidates = []
    for name in grids:
        grid = load_grid(name, results)
        configs = {run_id(c): c for c in configs_of(name)}
        if grid_hash(list(configs.values())) != grid.identity["grid_hash"]:
            raise TicketError(f"results/{name} were not exported from configs/{name}.yaml as it is now; "
                              f"export the grid again or restore its grid file")
        last = grid.table.groupby("run_id")["round"].max()
        candidates += [(name, grid, configs[run], int(last[run])) for run in sorted(last.index)]
    here = kind(machine(resolve_device(device)))
    rng = random.Random(seed)
    checks = []
    for name, grid, config, last in rng.sample(candidates, min(sample, len(candidates))):
        rounds = rng.randint(0, last) + 1
        with tempfile.TemporaryDirectory() as store:
            run_grid([{**config, "rounds": rounds}], Store(store), device, data_root, workers=1, progress=False)
            again = load_results(store, [{**config, "rounds": rounds}])
        key = ["round", "iteration"]
        run = run_id(config)
        shipped = grid.table[(grid.table.run_id == run) & (grid.table["round"] < rounds)].sort_values(key)
        detail = differences(shipped.reset_index(drop=True), again.sort_values(key).reset_index(drop=True))
        made_on = machine_kinds(grid.identity)
        if made_on == {here} or (made_on == {None} and not detail):  # unrecorded: bits if they agree
            check = Check(name, run, rounds, BITS, not detail, detail)
        else:
            check = Check(name, run, rounds, INTERVALS, *statistical_agreement(grid.table, run, again, rounds))
        on_check(check)
        checks.append(check)
    return checks
