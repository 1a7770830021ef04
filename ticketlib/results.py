"""All runs in a store as one tidy table: one row per run × round × evaluation point.

Measures: `train_loss` (mean minibatch loss since the last evaluation), `val_loss`, `val_acc`,
`test_acc` and `train_acc` (accuracy on the whole training split), each NaN where the run's
`eval_splits` did not measure it.
"""
from pathlib import Path

import pandas as pd

from .errors import TicketError
from .store import Store, run_id

KEY_COLUMNS = ["dataset", "model", "init", "scale", "seed", "protocol", "condition", "round",
               "weights_remaining", "iteration", "train_loss", "val_loss", "val_acc", "test_acc",
               "train_acc", "is_early_stop", "diverged"]
MEASURES = ("train_loss", "val_loss", "val_acc", "test_acc", "train_acc")  # NaN where not measured
FORMATS = (".parquet", ".csv")


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
    """Mean test accuracy and iteration at early stop per init, condition and round."""
    stops = table[table.is_early_stop]
    keys = ["dataset", "model", "protocol", "init", "scale", "condition", "round"]
    return stops.groupby(keys, as_index=False).agg(
        weights_remaining=("weights_remaining", "first"), seeds=("seed", "nunique"),
        test_acc=("test_acc", "mean"), iteration=("iteration", "mean"))
