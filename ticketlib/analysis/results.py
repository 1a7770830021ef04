"""Runs as one tidy table (one row per run × round × evaluation point), and a grid's results as
the files the analysis reads.

Measures: `train_loss` (mean minibatch loss since the last evaluation), `val_loss`, `val_acc`,
`test_acc` and `train_acc` (accuracy on the whole training split), each NaN where the run's
`eval_splits` did not measure it. Every other column but the seed and the run's id is part of
its setup (`setup_columns`).

A grid's results (`export_grid`), what notebooks read and the repository ships:
    results/<grid>/table.parquet   the tidy table of the grid's runs, up to the rounds it asks for
    results/<grid>/masks.npz       each run's last-round mask, packed as bits
    results/<grid>/layers.parquet  weights kept per run × round × pruned tensor (how pruning spread
                                   the sparsity over layers; grids exported before it lack it)
    results/<grid>/grid.json       its identity: the grid's name, a hash of its run configs
                                   (engine version included) and rounds, the files' checksums
"""
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ticketlib.errors import TicketError
from ticketlib.store.files import write_atomically
from ticketlib.store.runs import Store, run_id

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


def _flat(value):
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ",".join(map(str, value))
    return value


def load_results(store: str | Path = "data/runs", configs: list[dict] | None = None) -> pd.DataFrame:
    """Every run in the store, or only those of `configs` (e.g. one notebook's grid) up to the
    rounds they ask for: a run extended by a longer grid keeps its extra rounds to itself."""
    records = []
    wanted = None if configs is None else {run_id(c): c["rounds"] for c in configs}
    for run in Store(store).runs():
        if wanted is not None and run.path.name not in wanted:
            continue
        config = {k: _flat(v) for k, v in run.config.items()}
        for r in run.rounds():
            if wanted is not None and r >= wanted[run.path.name]:
                continue
            metrics = run.metrics(r)
            for row in metrics["rows"]:
                records.append({**config, "run_id": run.path.name, "round": r,
                                "weights_remaining": metrics["weights_remaining"],
                                "diverged": metrics["diverged"], **row})
    table = pd.DataFrame.from_records(records, columns=None if records else KEY_COLUMNS)
    rest = [c for c in table.columns if c not in KEY_COLUMNS]
    table = table.reindex(columns=KEY_COLUMNS + rest)  # a measure no run has is a column of NaN
    return table.astype({c: float for c in MEASURES})


def export(table: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    if path.suffix not in FORMATS:
        raise TicketError(f"results file must end in {' or '.join(FORMATS)}; got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        table.to_parquet(tmp, index=False)
    else:
        table.to_csv(tmp, index=False)
    tmp.replace(path)


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


def layer_counts(run, rounds: int) -> list[dict]:
    """Weights kept in each pruned tensor at each of a run's first `rounds` rounds."""
    return [dict(run_id=run.path.name, round=r, tensor=name, kept=int(mask.sum()), size=mask.numel())
            for r in run.rounds() if r < rounds for name, mask in run.tensors(r, "mask").items()]


def export_grid(name: str, configs: list[dict], store: str | Path, out: str | Path = RESULTS,
                data_root: str | Path = "data") -> Path:
    """Write a grid's results (table, last-round masks, layer counts, measures, identity) from the
    store; every run must have finished every round it asks for (a diverged run stops early and
    counts as finished). Measures (measures.py) need the dataset, from `data_root`."""
    if not name or name.startswith(".") or Path(name).name != name:
        raise TicketError(f"grid name {name!r} must be a plain file name (no folders, not starting with a dot)")
    store = Store(store)
    masks, layers, unfinished = {}, [], []
    for config in configs:
        run = store.find(config)
        rounds = run.rounds() if run else []
        if not rounds or (len(rounds) < config["rounds"] and not run.metrics(rounds[-1])["diverged"]):
            unfinished.append(f"{config['init']} seed {config['seed']} {config['condition']}")
            continue
        masks[run_id(config)] = {k: v.numpy() for k, v in run.tensors(min(rounds[-1], config["rounds"] - 1), "mask").items()}
        layers += layer_counts(run, config["rounds"])
    if unfinished:
        raise TicketError(f"grid {name} is not finished in {store.root}: {len(unfinished)} run(s) lack rounds "
                          f"({', '.join(unfinished[:3])}{', ...' if len(unfinished) > 3 else ''}); "
                          f"run `ticketlib run --config configs/{name}.yaml --store {store.root}` first")
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grid.json").unlink(missing_ok=True)  # until the new files are all in place
    table = load_results(store.root, configs).sort_values(["run_id", "round", "iteration"], ignore_index=True)
    files = {"table.parquet": io.BytesIO(), "masks.npz": io.BytesIO(), "layers.parquet": io.BytesIO()}
    table.to_parquet(files["table.parquet"], index=False)
    np.savez_compressed(files["masks.npz"], **pack_masks(masks))
    pd.DataFrame(layers, columns=LAYER_COLUMNS).sort_values(["run_id", "round", "tensor"], ignore_index=True).to_parquet(
        files["layers.parquet"], index=False)
    for file, rows in measured(configs, store, data_root).items():
        files[file] = io.BytesIO()
        rows.to_parquet(files[file], index=False)
    identity = dict(grid=name, grid_hash=grid_hash(configs), runs=len(configs),
                    **{f"{f.split('.')[0]}_sha256": hashlib.sha256(b.getvalue()).hexdigest()[:16] for f, b in files.items()})
    for file, buffer in files.items():
        write_atomically(folder / file, buffer.getvalue())
    write_atomically(folder / "grid.json", json.dumps(identity, indent=1).encode())  # last: present means complete
    return folder


def measured(configs: list[dict], store: Store, data_root) -> dict[str, pd.DataFrame]:
    """The grid's measures (measures.py): no-retrain diagnostics of its tickets, and instability
    where a ticket has a `copy`; each a tidy table by run_id (the ticket's) and round."""
    from ticketlib.data.datasets import load_dataset
    from ticketlib.imp.grid import data_key
    from ticketlib.imp.measures import DIAGNOSTIC_COLUMNS, INSTABILITY_COLUMNS, diagnostic_rows, instability_rows, one_thread
    tickets = {run_id(c): c for c in configs if c["condition"] == "ticket"}
    copies = [c for c in configs if c["condition"] == "copy" and run_id({**c, "condition": "ticket"}) in tickets]
    diagnostics, instability = [], []
    for key, config in tickets.items():
        data = load_dataset(*data_key(config), root=data_root)
        diagnostics += one_thread(diagnostic_rows, store.find(config), config["rounds"], data)
    for config in copies:
        data = load_dataset(*data_key(config), root=data_root)
        instability += one_thread(instability_rows, store.find({**config, "condition": "ticket"}), store.find(config),
                                  config["rounds"], data)
    tables = {"diagnostics.parquet": pd.DataFrame(diagnostics, columns=DIAGNOSTIC_COLUMNS)}
    if copies:
        tables["instability.parquet"] = pd.DataFrame(instability, columns=INSTABILITY_COLUMNS)
    return {file: table.sort_values(list(table.columns[:3]), ignore_index=True) for file, table in tables.items()}


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
        columns joined. Grids exported before layer counts existed have none: an error says so."""
        path = self.folder / "layers.parquet"
        if not path.is_file():
            raise TicketError(f"{self.folder} has no layer counts (exported before they existed); export it again")
        counts = pd.read_parquet(path).assign(fraction=lambda t: t.kept / t["size"])
        runs = self.table.drop_duplicates("run_id")[[c for c in self.table.columns if c not in ROW_COLUMNS or c == "run_id"]]
        return counts.merge(runs, on="run_id", how="left")

    def measure(self, name: str) -> pd.DataFrame:
        """A measure's tidy table (`diagnostics` or `instability`, measures.py) with the tickets' config
        columns joined; an error names what the grid has."""
        path = self.folder / f"{name}.parquet"
        if f"{name}_sha256" not in self.identity:
            have = [f.split(".")[0] for f in EXPORTED[2:] if f"{f.split('.')[0]}_sha256" in self.identity]
            raise TicketError(f"grid {self.identity['grid']} has no {name} measure; it has: {', '.join(have) or 'none'}")
        runs = self.table.drop_duplicates("run_id")[[c for c in self.table.columns if c not in ROW_COLUMNS or c == "run_id"]]
        return pd.read_parquet(path).merge(runs, on="run_id", how="left")

    def last_masks(self, condition: str = "ticket") -> dict[tuple, dict[str, np.ndarray]]:
        """(init, seed) → the grid's last-round mask, for the runs of `condition` that reached it."""
        last = self.table["round"].max()
        runs = self.table[(self.table.condition == condition) & (self.table["round"] == last)]
        masks = self.masks()
        return {(r.init, r.seed): masks[r.run_id] for r in runs.drop_duplicates("run_id").itertuples()}


def load_grid(name: str, results: str | Path = RESULTS) -> GridResults:
    """Read a grid's exported results (read only), checked against their identity file."""
    folder = Path(results) / name
    if not (folder / "grid.json").is_file():
        found = sorted(p.parent.name for p in Path(results).glob("*/grid.json"))
        raise TicketError(f"no results for grid {name!r} in {results}; grids there: {', '.join(found) or 'none'}. "
                          f"Make them with `ticketlib run --config configs/{name}.yaml` then `ticketlib export {name}`")
    identity = json.loads((folder / "grid.json").read_text())
    for file in [f for f in (*EXPORTED, "masks.npz") if f"{f.split('.')[0]}_sha256" in identity]:
        digest = hashlib.sha256((folder / file).read_bytes()).hexdigest()[:16]
        if digest != identity[f"{file.split('.')[0]}_sha256"]:
            raise TicketError(f"{folder / file} does not match {folder / 'grid.json'} (changed or damaged); "
                              f"export the grid again")
    return GridResults(folder, identity, pd.read_parquet(folder / "table.parquet"))
