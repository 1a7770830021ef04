"""A grid's exported results, read for analysis (no torch): one tidy table (one row per run ×
round × evaluation point), the last masks, layer counts and measures. imp/export.py writes them.

Measures: `train_loss` (mean minibatch loss since the last evaluation), `val_loss`, `val_acc`,
`test_acc` and `train_acc` (accuracy on the whole training split), each NaN where the run's
`eval_splits` did not measure it. Every other column but the seed and the run's id is part of
its setup (`setup_columns`).

A grid's results (imp/export.py's `export_grid`), what notebooks read and the repository ships:
    results/<grid>/table.parquet   the tidy table of the grid's runs, up to the rounds it asks for
    results/<grid>/masks.npz       each run's last-round mask, packed as bits
    results/<grid>/layers.parquet  weights kept per run × round × pruned tensor (how pruning spread
                                   the sparsity over layers; grids exported before it lack it)
    results/<grid>/diagnostics.parquet, instability.parquet   measures (imp/measures.py)
    results/<grid>/grid.json       its identity: the grid's name, a hash of its run configs
                                   (engine version included) and rounds, the files' checksums
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ticketlib.config import run_id
from ticketlib.errors import TicketError

KEY_COLUMNS = ["dataset", "model", "init", "scale", "seed", "protocol", "condition", "round",
               "weights_remaining", "iteration", "train_loss", "val_loss", "val_acc", "test_acc",
               "train_acc", "is_early_stop", "diverged"]
MEASURES = ("train_loss", "val_loss", "val_acc", "test_acc", "train_acc")  # NaN where not measured
ROW_COLUMNS = ("run_id", "round", "weights_remaining", "iteration", *MEASURES, "is_early_stop", "diverged")
FORMATS = (".parquet", ".csv")
LAYER_COLUMNS = ["run_id", "round", "tensor", "kept", "size"]
EXPORTED = ("table.parquet", "layers.parquet", "diagnostics.parquet", "instability.parquet")  # tables beside masks.npz
RESULTS = Path("results")


REPLICATE_COLUMNS = ("seed", "data_seed")  # what differs between the runs of one setup


def setup_columns(table: pd.DataFrame) -> list[str]:
    """The config columns that define a setup: all but the seeds and per-row columns."""
    return [c for c in table.columns if c not in (*ROW_COLUMNS, *REPLICATE_COLUMNS, "failed", "censored")]


def with_more_seeds(table: pd.DataFrame, more: pd.DataFrame) -> pd.DataFrame:
    """`table` with the runs of `more` (a grid of further seeds) whose setup `table` also has, as one
    table; `more`'s other setups are left out. A setup and seed both hold is an error: results are
    never mixed."""
    columns = list(dict.fromkeys([*table.columns, *more.columns]))
    table, more = table.reindex(columns=columns), more.reindex(columns=columns)
    keys = setup_columns(table)
    def setups(t):
        return pd.Series(list(zip(*(t[k].astype(str) for k in keys))), index=t.index)
    mine, theirs = setups(table), setups(more)
    extra = more[theirs.isin(set(mine))]
    seen = set(zip(mine, table.seed)) & set(zip(theirs[extra.index], extra.seed))
    if seen:
        raise TicketError(f"{len(seen)} run(s) of one setup and seed are in both grids (e.g. seed {next(iter(seen))[1]}): "
                          f"a grid of further seeds must hold other seeds")
    return pd.concat([table, extra], ignore_index=True)


def early_stop_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean test accuracy and iteration at early stop per setup and round (the columns that
    differ between the table's setups name each group)."""
    stops = table[table.is_early_stop.astype(bool)]
    keys = [c for c in setup_columns(table) if table[c].nunique(dropna=False) > 1] + ["round"]
    return stops.groupby(keys, as_index=False, dropna=False).agg(
        weights_remaining=("weights_remaining", "first"), seeds=("seed", "nunique"),
        test_acc=("test_acc", "mean"), iteration=("iteration", "mean"))


def grid_hash(configs: list[dict]) -> str:
    """A grid's identity: its runs (config hashes, engine version included) and how far each goes."""
    runs = sorted((run_id(c), c["rounds"]) for c in configs)
    return hashlib.sha256(json.dumps(runs).encode()).hexdigest()[:16]


def pack_masks(masks: dict[str, dict]) -> dict[str, np.ndarray]:
    """{run_id: {tensor: bool mask}} → npz arrays: bits packed, shape kept beside them."""
    arrays = {}
    for run, mask in masks.items():
        for name, values in mask.items():
            values = np.asarray(values, dtype=bool)
            arrays[f"{run}/{name}"] = np.packbits(values.ravel())
            arrays[f"{run}/{name}.shape"] = np.asarray(values.shape, dtype=np.int64)
    return arrays


def unpack_masks(arrays) -> dict[str, dict[str, np.ndarray]]:
    masks: dict[str, dict] = {}
    for key in arrays:
        if not key.endswith(".shape"):
            run, name = key.split("/", 1)
            shape = tuple(arrays[f"{key}.shape"])
            masks.setdefault(run, {})[name] = np.unpackbits(arrays[key], count=int(np.prod(shape))).astype(bool).reshape(shape)
    return masks


@dataclass
class GridResults:
    """A grid's exported results: its tidy table, its identity and (on demand) its last masks."""
    folder: Path
    identity: dict
    table: pd.DataFrame

    def masks(self) -> dict[str, dict[str, np.ndarray]]:
        """run_id → {tensor: bool mask} of each run's last round."""
        with np.load(self.folder / "masks.npz") as arrays:
            return unpack_masks({k: arrays[k] for k in arrays.files})

    def layers(self) -> pd.DataFrame:
        """Weights kept per run × round × pruned tensor, with the fraction kept; the runs' config
        columns and each round's overall weights remaining joined. Grids exported before layer
        counts existed have none: an error says so."""
        path = self.folder / "layers.parquet"
        if not path.is_file():
            raise TicketError(f"{self.folder} has no layer counts (exported before they existed); export it again")
        return self.joined(pd.read_parquet(path).assign(fraction=lambda t: t.kept / t["size"]))

    def joined(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows by run_id and round, with their run's config columns and the round's weights remaining."""
        runs = self.table.drop_duplicates("run_id")[[c for c in self.table.columns if c not in ROW_COLUMNS or c == "run_id"]]
        levels = self.table[["run_id", "round", "weights_remaining"]].drop_duplicates()
        return rows.merge(runs, on="run_id", how="left").merge(levels, on=["run_id", "round"], how="left")

    def measure(self, name: str) -> pd.DataFrame:
        """A measure's tidy table (`diagnostics` or `instability`, imp/measures.py) with the tickets'
        config columns and each round's weights remaining joined; an error names what the grid has."""
        path = self.folder / f"{name}.parquet"
        if f"{name}_sha256" not in self.identity:
            have = [f.split(".")[0] for f in EXPORTED[2:] if f"{f.split('.')[0]}_sha256" in self.identity]
            raise TicketError(f"grid {self.identity['grid']} has no {name} measure; it has: {', '.join(have) or 'none'}")
        return self.joined(pd.read_parquet(path))

    def last_masks(self, condition: str = "ticket") -> dict[tuple, dict[str, np.ndarray]]:
        """(init, seed) → the grid's last-round mask, for the runs of `condition` that reached it."""
        last = self.table["round"].max()
        runs = self.table[(self.table.condition == condition) & (self.table["round"] == last)]
        masks = self.masks()
        return {(r.init, r.seed): masks[r.run_id] for r in runs.drop_duplicates("run_id").itertuples()}


def read_identity(name: str, results: str | Path = RESULTS) -> dict:
    """A grid's identity file (grid.json; the one place it is read), its files checked against it."""
    folder = Path(results) / name
    if not (folder / "grid.json").is_file():
        found = sorted(p.parent.name for p in Path(results).glob("*/grid.json"))
        raise TicketError(f"no results for grid {name!r} in {results}; grids there: {', '.join(found) or 'none'}. "
                          f"Make them with `ticketlib run --config configs/{name}.yaml` then `ticketlib export {name}`")
    identity = json.loads((folder / "grid.json").read_text())
    for file in [f for f in (*EXPORTED, "masks.npz") if f"{f.split('.')[0]}_sha256" in identity]:
        digest = hashlib.sha256((folder / file).read_bytes()).hexdigest()[:16] if (folder / file).is_file() else None
        if digest != identity[f"{file.split('.')[0]}_sha256"]:
            raise TicketError(f"{folder / file} does not match {folder / 'grid.json'} (changed, damaged or missing); "
                              f"export the grid again")
    return identity


def load_grid(name: str, results: str | Path = RESULTS) -> GridResults:
    """Read a grid's exported results (read only), checked against their identity file."""
    identity = read_identity(name, results)
    folder = Path(results) / name
    return GridResults(folder, identity, pd.read_parquet(folder / "table.parquet"))


def pooled_with(grid: GridResults, more_seeds_grid: str, results: str | Path = RESULTS) -> tuple[pd.DataFrame, list[GridResults]]:
    """`grid`'s table with the runs of `more_seeds_grid` (a grid of further seeds, "" for none) that
    share its setups (with_more_seeds), and the further grid as read, for the outputs' provenance."""
    if not more_seeds_grid:
        return grid.table, []
    more = load_grid(more_seeds_grid, results)
    return with_more_seeds(grid.table, more.table), [more]
