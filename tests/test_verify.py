import json

import numpy as np
import pandas as pd
import pytest

from ticketlib.analysis.results import load_grid
from ticketlib.errors import TicketError
from ticketlib.verify import (
    BITS,
    INTERVALS,
    differences,
    prediction_interval,
    statistical_agreement,
    verify,
)


def test_verify_retrains_shipped_runs_bit_for_bit_on_the_machine_kind_that_made_them(tiny_grid, data_root):
    root, configs = tiny_grid
    assert load_grid("tiny", root / "results").identity["made_on"][0]["machine"]["torch"]  # what trained it, recorded
    checks = verify(3, seed=1, results=root / "results", configs_of=lambda name: configs, device="cpu",
                    data_root=data_root)
    assert len(checks) == 3 and len({c.run for c in checks}) == 3
    assert all(c.kind == BITS and c.passed and c.detail == "" for c in checks)
    assert [c.rounds for c in verify(3, seed=1, results=root / "results", configs_of=lambda name: configs,
                                     device="cpu", data_root=data_root)] == [c.rounds for c in checks]  # seeded draw


def test_on_another_machine_kind_verify_checks_the_intervals(tiny_grid, data_root, tmp_path):
    root, configs = tiny_grid
    results = tmp_path / "results"
    (results / "tiny").mkdir(parents=True)
    for file in (root / "results" / "tiny").iterdir():
        (results / "tiny" / file.name).write_bytes(file.read_bytes())
    identity = json.loads((results / "tiny" / "grid.json").read_text())
    identity["made_on"] = [dict(machine=dict(cpu="another CPU", isa="AVX-512", torch="2.13.0", device="cpu"), rounds=24)]
    (results / "tiny" / "grid.json").write_text(json.dumps(identity))
    checks = verify(2, seed=1, results=results, configs_of=lambda name: configs, device="cpu", data_root=data_root)
    assert all(c.kind == INTERVALS for c in checks)
    assert all(c.passed for c in checks), [c.verdict for c in checks]  # its own bits lie inside its seeds' intervals


def test_verify_refuses_results_exported_from_another_grid_file(tiny_grid, data_root):
    root, configs = tiny_grid
    with pytest.raises(TicketError, match="results/tiny were not exported from configs/tiny.yaml"):
        verify(1, results=root / "results", configs_of=lambda name: configs[:-1], data_root=data_root)


def test_bit_differences_name_the_column(tiny_grid):
    table = load_grid("tiny", tiny_grid[0] / "results").table
    run = table[table.run_id == table.run_id.iloc[0]].reset_index(drop=True)
    assert differences(run, run.copy()) == ""
    assert differences(run, run.assign(val_loss=run.val_loss * 1.001)).startswith("val_loss differs")
    assert "rows at other iterations" in differences(run, run.iloc[:-1])


def synthetic_grid(accuracies: dict) -> pd.DataFrame:
    """Early-stop rows of one setup: run → its test accuracy at rounds 0 and 1."""
    rows = [dict(run_id=run, seed=seed, init="xavier_normal", condition="ticket", round=r, weights_remaining=100.0 - 20 * r,
                 iteration=100, test_acc=acc, val_loss=0.1, is_early_stop=True, diverged=False)
            for seed, (run, acc) in enumerate(accuracies.items()) for r in (0, 1)]
    return pd.DataFrame(rows)


def test_the_interval_check_passes_a_plausible_run_and_fails_an_implausible_one():
    table = synthetic_grid({"a": 0.970, "b": 0.972, "c": 0.969, "d": 0.971, "e": 0.970})
    mine = table[table.run_id == "a"]
    assert statistical_agreement(table, "a", mine.assign(test_acc=0.9705), 2) == (True, "2 rounds")
    passed, detail = statistical_agreement(table, "a", mine.assign(test_acc=0.95), 2)
    assert not passed and "round 0: test accuracy 0.9500 outside the 99.50% prediction interval" in detail
    assert "(99% over 2 rounds)" in detail  # the run's rounds together, not each round, at 99%
    assert not statistical_agreement(table, "a", mine[mine["round"] < 1], 2)[0]  # a round missing: it diverged


def test_prediction_interval_covers_a_new_draw_as_stated():
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(4000):
        draws = rng.normal(size=4)
        low, high = prediction_interval(draws[:3])
        hits.append(low <= draws[3] <= high)
    assert abs(np.mean(hits) - 0.99) < 0.006


def test_seeds_that_happen_to_agree_at_one_round_do_not_promise_more_than_the_setups_spread():
    rows = []
    for seed, run in enumerate("abc"):
        for r, acc in ((0, 0.36 + 0.01 * seed), (1, 0.380 + 0.0001 * seed)):  # round 1: three seeds within 0.02 points
            rows.append(dict(run_id=run, seed=seed, init="xavier_normal", condition="ticket", round=r,
                             weights_remaining=100.0 - 20 * r, iteration=100, test_acc=acc, val_loss=0.1,
                             is_early_stop=True, diverged=False))
    table = pd.DataFrame(rows)
    mine = table[table.run_id == "a"]
    again = mine.assign(test_acc=[0.37, 0.355])  # round 1: 2.5 points off, plausible given round 0's 1-point SD
    assert statistical_agreement(table, "a", again, 2) == (True, "2 rounds")
    passed, detail = statistical_agreement(table, "a", mine.assign(test_acc=[0.37, 0.10]), 2)
    assert not passed and detail.startswith("round 1: test accuracy 0.1000 outside")  # a real fault still fails
