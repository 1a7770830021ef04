import json

import pandas as pd
import pytest

from ticketlib.errors import TicketError
from ticketlib.grid import expand_grid, run_grid
from ticketlib.protocols import make_run
from ticketlib.results import KEY_COLUMNS, export, load_results
from ticketlib.store import Store, run_id


def test_known_config_has_a_pinned_hash():
    """Changing this hash orphans every stored run: do it only on purpose."""
    config = make_run("mnist1d", "lenet_300_100", "xavier_normal", 0)
    assert run_id(config) == "e8605f9b765cb2b0"  # engine 5, frankle2019 testing at the early stop (test_at)
    assert run_id(make_run("mnist1d", "lenet_300_100", "xavier_normal", 0, rounds=3, scale=1)) == run_id(config)
    for change in (dict(seed=1), dict(init="kaiming_normal"), dict(scale=2.0), dict(lr=1e-3),
                   dict(condition="reinit"), dict(prune_rates={"fc": 0.3})):
        args = {"dataset": "mnist1d", "model": "lenet_300_100", "init": "xavier_normal", "seed": 0} | change
        assert run_id(make_run(**args)) != run_id(config), change


def test_run_folder_holds_config_and_complete_rounds(small_config, small_data, store):
    config = small_config()
    run_grid([config], store, "cpu", workers=1, progress=False)
    folder = store.root / run_id(config)
    saved = json.loads((folder / "config.json").read_text())
    assert saved == {k: v for k, v in config.items() if k != "rounds"}
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "round_000", "round_001", "round_002"]
    assert sorted(p.name for p in (folder / "round_000").iterdir()) == ["mask.pt", "metrics.json", "sha256.json", "weights.pt"]


def test_tidy_table_has_one_row_per_evaluation(small_config, small_data, store, tmp_path):
    configs = expand_grid(["mnist1d"], ["lenet_300_100"], ["xavier_normal", "lecun_uniform"], [0, 1],
                          ["ticket", "random"], num_samples=1000, val_size=80, iterations=60,
                          eval_every=20, rounds=2, hidden=[32, 16])
    run_grid(configs, store, "cpu", workers=1, progress=False)
    table = load_results(store.root)
    assert list(table.columns[:len(KEY_COLUMNS)]) == KEY_COLUMNS
    assert len(table) == 8 * 2 * 4  # runs × rounds × evaluations (iterations 0, 20, 40, 60)
    assert table.groupby(["run_id", "round"]).is_early_stop.sum().eq(1).all()
    lowest = table.loc[table.groupby(["run_id", "round"]).val_loss.idxmin()]  # first row of the minimum
    assert lowest.is_early_stop.all() and lowest.val_loss.nunique() > 1
    assert sorted(table.weights_remaining.round(2).unique()) == [80.84, 100.0]  # (1952 - 256 - 102 - 16) / 1952 kept
    assert table.val_loss.notna().all()
    tested = table.is_early_stop | (table.iteration == 60)  # test_at early_stop: the early-stop and last rows
    assert table.test_acc[tested].between(0, 1).all() and table.test_acc[~tested].isna().all()
    # a grid's table stops at the rounds it asks for, though the store holds more
    shorter = [{**c, "rounds": 1} for c in configs[:2]]
    assert sorted(load_results(store.root, shorter)["round"].unique()) == [0]
    assert len(load_results(store.root, shorter)) == 2 * 4
    for name in ("r.csv", "r.parquet"):
        export(table, tmp_path / name)
        reader = pd.read_csv if name.endswith("csv") else pd.read_parquet
        again = reader(tmp_path / name)
        assert again.shape == table.shape and list(again.columns) == list(table.columns)
    with pytest.raises(TicketError, match="parquet or .csv"):
        export(table, tmp_path / "r.xlsx")


def test_empty_store_gives_empty_table(tmp_path):
    assert list(load_results(tmp_path).columns) == KEY_COLUMNS


def test_worker_processes_give_the_same_table(small_config, small_data, tmp_path):
    configs = [small_config(init=init, seed=seed, condition=condition, rounds=2)
               for init in ("xavier_uniform", "orthogonal") for seed in (0, 1) for condition in ("ticket", "reinit")]
    tables = []
    for workers in (1, 2):
        store = Store(tmp_path / f"w{workers}")
        assert run_grid(configs, store, "cpu", workers=workers, progress=False)["trained"] == 16
        table = load_results(store.root).sort_values(["run_id", "round", "iteration"], ignore_index=True)
        tables.append(table)
    pd.testing.assert_frame_equal(tables[0], tables[1])
