import numpy as np
import pytest

from ticketlib.errors import TicketError
from ticketlib.analysis.results import load_grid
from ticketlib.verify import compare, verify


def test_verify_retrains_shipped_runs_bit_for_bit(tiny_grid, data_root):
    root, configs = tiny_grid
    checks = verify(3, seed=1, results=root / "results", configs_of=lambda name: configs, device="cpu",
                    data_root=data_root)
    assert len(checks) == 3 and len({c.run for c in checks}) == 3
    assert all(c.identical and c.within and c.worst == "" for c in checks)
    assert [c.rounds for c in verify(3, seed=1, results=root / "results", configs_of=lambda name: configs,
                                     device="cpu", data_root=data_root)] == [c.rounds for c in checks]  # seeded draw


def test_verify_refuses_results_exported_from_another_grid_file(tiny_grid, data_root):
    root, configs = tiny_grid
    with pytest.raises(TicketError, match="results/tiny were not exported from configs/tiny.yaml"):
        verify(1, results=root / "results", configs_of=lambda name: configs[:-1], data_root=data_root)


def test_differences_are_judged_against_the_tolerance(tiny_grid):
    table = load_grid("tiny", tiny_grid[0] / "results").table
    run = table[table.run_id == table.run_id.iloc[0]].reset_index(drop=True)
    assert compare(run, run.copy()) == (True, True, "")
    nudged = run.assign(val_acc=run.val_acc + 0.004, val_loss=run.val_loss * 1.001)
    identical, within, worst = compare(run, nudged)
    assert (identical, within) == (False, True) and worst.startswith("val_acc by up to 0.004")
    assert compare(run, run.assign(test_acc=run.test_acc + 0.05))[1] is False  # 5 points: beyond 1
    moved = run.assign(is_early_stop=np.roll(run.is_early_stop.to_numpy(), 1))
    assert compare(run, moved)[:2] == (False, False)
    assert compare(run, run.iloc[:-1])[1] is False
