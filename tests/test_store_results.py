import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ticketlib.analysis.results import KEY_COLUMNS, grid_hash, load_grid, with_more_seeds
from ticketlib.config import run_id
from ticketlib.errors import TicketError
from ticketlib.imp.export import export_grid, load_results
from ticketlib.imp.export import save_table as export
from ticketlib.imp.grid import expand_grid, run_grid
from ticketlib.imp.protocols import make_run
from ticketlib.store.runs import Store


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


def test_a_grid_exports_its_table_last_masks_and_identity(tiny_grid, tmp_path, data_root):
    root, configs = tiny_grid
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    grid = load_grid("tiny", root / "results")
    assert grid.identity["grid"] == "tiny" and grid.identity["runs"] == 8
    assert grid.identity["grid_hash"] == grid_hash(configs) != grid_hash(configs[:-1])
    expected = load_results(root / "runs", configs).sort_values(["run_id", "round", "iteration"], ignore_index=True)
    pd.testing.assert_frame_equal(grid.table, expected)
    masks = grid.last_masks()
    assert sorted(masks) == [("lecun_uniform", 0), ("lecun_uniform", 1), ("xavier_normal", 0), ("xavier_normal", 1)]
    ticket = next(c for c in configs if (c["init"], c["seed"], c["condition"]) == ("lecun_uniform", 1, "ticket"))
    stored = Store(root / "runs").find(ticket).tensors(2, "mask")
    assert stored.keys() == masks[("lecun_uniform", 1)].keys()
    assert all(np.array_equal(stored[n].numpy(), masks[("lecun_uniform", 1)][n]) for n in stored)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # reading wrote nothing
    again = export_grid("tiny", configs, root / "runs", tmp_path, data_root)  # the same bytes every time
    for name in ("table.parquet", "masks.npz", "layers.parquet", "diagnostics.parquet", "grid.json"):
        assert (again / name).read_bytes() == (root / "results" / "tiny" / name).read_bytes()


def test_exported_results_are_refused_when_damaged_unfinished_or_unknown(tiny_grid, tmp_path):
    root, configs = tiny_grid
    shutil.copytree(root / "results", tmp_path / "results")
    table = tmp_path / "results" / "tiny" / "table.parquet"
    table.write_bytes(table.read_bytes()[:-10])
    with pytest.raises(TicketError, match="table.parquet does not match .*grid.json"):
        load_grid("tiny", tmp_path / "results")
    with pytest.raises(TicketError, match="no results for grid 'other' .* grids there: tiny"):
        load_grid("other", tmp_path / "results")
    longer = [{**c, "rounds": 4} for c in configs]
    with pytest.raises(TicketError, match="grid tiny is not finished .* 8 run.s. lack rounds"):
        export_grid("tiny", longer, root / "runs", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_further_seeds_join_their_setups_and_never_mix_with_the_grids_own():
    def rows(init, lr, seeds, **more):
        return [dict(init=init, lr=lr, seed=s, run_id=f"{init}{lr}{s}", round=0, test_acc=0.9, **more) for s in seeds]
    grid = pd.DataFrame(rows("xavier_normal", 0.0012, range(3)) + rows("normal", 0.0012, range(3)))
    more = pd.DataFrame(rows("xavier_normal", 0.0012, (3, 4)) + rows("xavier_normal", 0.0012, (3, 4), lr_rule="relative")
                        + rows("orthogonal", 0.0012, (3, 4)))
    pooled = with_more_seeds(grid, more)
    assert pooled.groupby("init").seed.nunique().to_dict() == {"normal": 3, "xavier_normal": 5}  # orthogonal: not a setup of the grid
    assert pooled.lr_rule.isna().all()  # the relative rule's runs are another setup
    with pytest.raises(TicketError, match="in both grids"):
        with_more_seeds(grid, pd.DataFrame(rows("normal", 0.0012, (2, 3))))


def test_a_notebook_without_further_seeds_reads_its_own_grid_alone(tmp_path):
    from ticketlib.analysis.results import GridResults, pooled_with
    grid = GridResults(tmp_path, {"grid": "g"}, pd.DataFrame(dict(init=["a"], seed=[0])))
    table, more = pooled_with(grid, "", tmp_path)
    assert table is grid.table and more == []
    with pytest.raises(TicketError, match="no results for grid 'absent'"):
        pooled_with(grid, "absent", tmp_path)
