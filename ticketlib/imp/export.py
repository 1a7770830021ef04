"""From the run store to a grid's exported results (analysis/results.py reads them): the tidy
table, the last masks, per-layer counts, the measures (imp/measures.py) and the identity file.
"""
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ticketlib.analysis.results import (
    FORMATS,
    KEY_COLUMNS,
    LAYER_COLUMNS,
    MEASURES,
    RESULTS,
    grid_hash,
    pack_masks,
)
from ticketlib.config import run_id
from ticketlib.errors import TicketError
from ticketlib.store.files import write_atomically
from ticketlib.store.runs import Store


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


def save_table(table: pd.DataFrame, path: str | Path) -> None:
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


def layer_counts(run, rounds: int) -> list[dict]:
    """Weights kept in each pruned tensor at each of a run's first `rounds` rounds."""
    return [dict(run_id=run.path.name, round=r, tensor=name, kept=int(mask.sum()), size=mask.numel())
            for r in run.rounds() if r < rounds for name, mask in run.tensors(r, "mask").items()]


def export_grid(name: str, configs: list[dict], store: str | Path, out: str | Path = RESULTS,
                data_root: str | Path = "data") -> Path:
    """Write a grid's results (table, last-round masks, layer counts, measures, identity) from the
    store; every run must have finished every round it asks for (a diverged run stops early and
    counts as finished). Measures (measures.py) need the dataset, from `data_root`. The identity
    records what trained the rounds (`made_on`: engine/machine.py's records, with round counts)."""
    if not name or name.startswith(".") or Path(name).name != name:
        raise TicketError(f"grid name {name!r} must be a plain file name (no folders, not starting with a dot)")
    store = Store(store)
    masks, layers, machines, unfinished = {}, [], {}, []
    for config in configs:
        run = store.find(config)
        rounds = run.rounds() if run else []
        if not rounds or (len(rounds) < config["rounds"] and not run.metrics(rounds[-1])["diverged"]):
            unfinished.append(f"{config['init']} seed {config['seed']} {config['condition']}")
            continue
        masks[run_id(config)] = {k: v.numpy() for k, v in run.tensors(min(rounds[-1], config["rounds"] - 1), "mask").items()}
        layers += layer_counts(run, config["rounds"])
        for r in (r for r in rounds if r < config["rounds"]):
            record = json.dumps(run.metrics(r).get("machine", "unrecorded"), sort_keys=True)
            machines[record] = machines.get(record, 0) + 1
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
                    **{f"{f.split('.')[0]}_sha256": hashlib.sha256(b.getvalue()).hexdigest()[:16] for f, b in files.items()},
                    made_on=[dict(machine=json.loads(record), rounds=count) for record, count in sorted(machines.items())])
    for file, buffer in files.items():
        write_atomically(folder / file, buffer.getvalue())
    write_atomically(folder / "grid.json", json.dumps(identity, indent=1).encode())  # last: present means complete
    return folder


def measured(configs: list[dict], store: Store, data_root) -> dict[str, pd.DataFrame]:
    """The grid's measures (measures.py): no-retrain diagnostics of its tickets, and instability
    where a ticket has a `copy`; each a tidy table by run_id (the ticket's) and round."""
    from ticketlib.data.datasets import load_dataset
    from ticketlib.imp.grid import data_key
    from ticketlib.imp.measures import (
        DIAGNOSTIC_COLUMNS,
        INSTABILITY_COLUMNS,
        diagnostic_rows,
        instability_rows,
        one_thread,
    )
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
