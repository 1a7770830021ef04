"""benchmarks/patience.py: where per-round patience would stop, read from shipped rows."""
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from patience import stop_index  # noqa: E402


def test_patience_stops_after_that_many_evaluations_without_a_new_minimum():
    losses = np.array([5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2, 3.3])
    assert stop_index(losses, 2) == 3   # 4.5 and 4.2 do not beat 4.0
    assert stop_index(losses, 3) == 7   # 3.1, 3.2, 3.3 do not beat 3.0
    assert stop_index(losses, 4) == 7   # never stops: the last evaluation


def test_patience_reads_a_shipped_grid():
    out = subprocess.run([sys.executable, "benchmarks/patience.py", "mnist1d_main", "1000", "1", "--rounds", "2"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0].endswith(" rounds (diverged runs left out)")
    runs, rounds = int(lines[0].split()[0]), int(lines[0].split()[2])
    assert rounds == 2 * runs
    assert lines[3] == f"| 1000 | 0 of {rounds} (0.0%) | 0% |"  # a patience longer than the round never stops it
    changed = int(lines[4].split("|")[2].split()[0])
    assert 0 < changed <= rounds
