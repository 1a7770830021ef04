import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ticketlib.cli import main
from ticketlib.nets.inits import INITIALIZERS

SMALL_FLAGS = ["--dataset", "mnist1d", "--model", "lenet_300_100", "--num-samples", "1000",
               "--hidden", "32,16", "--iterations", "40", "--eval-every", "20", "--rounds", "2"]


def test_inits_lists_every_scheme_with_formula(capsys):
    assert main(["inits"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "(" in line and not line.startswith("16")]
    assert [line.split()[0] for line in lines] == list(INITIALIZERS)  # each scheme once, in registry order
    assert any(line.startswith("kaiming_normal") and "N(0, 2/fan_in)" in line for line in lines)


def test_conditions_lists_each_with_its_own_whole_description(capsys):
    """A copy starts where its ticket does (not from a fresh draw, as reinit); long descriptions are
    not cut at their first line."""
    assert main(["conditions"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "fresh draw" in lines["reinit"] and "fresh draw" not in lines["copy"]
    assert "another data order" in lines["copy"] and "another data order" not in lines["ticket"]
    assert lines["rescaled"].endswith("Evci et al. 2022).")


@pytest.mark.slow
def test_run_and_results_end_to_end(tmp_path):
    """The console script: a grid from YAML plus flags, a rerun that trains nothing, an export."""
    script = Path(sys.executable).with_name("ticketlib")
    assert script.exists(), "the ticketlib console script is installed"
    grid = tmp_path / "grid.yaml"
    grid.write_text("dataset: mnist1d\nmodel: lenet_300_100\ninits: [xavier_normal, kaiming_normal]\n"
                    "seeds: 0-1\nconditions: [ticket, reinit]\nrounds: 3\niterations: 60\n"
                    "eval_every: 30\nnum_samples: 1000\nhidden: [32, 16]\n"
                    f"store: {tmp_path / 'runs'}\ndata_root: {tmp_path}\n")
    first = subprocess.run([script, "run", "--config", grid, "--no-progress"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "8 runs: 24 rounds trained, 0 runs diverged" in first.stdout
    again = subprocess.run([script, "run", "--config", grid, "--no-progress"], capture_output=True, text=True)
    assert "8 runs: 0 rounds trained" in again.stdout
    out = tmp_path / "r.csv"
    export = subprocess.run([script, "results", "--store", tmp_path / "runs", "--out", out], capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    table = pd.read_csv(out)
    assert len(table) == 8 * 3 * 3 and set(table.condition) == {"ticket", "reinit"}
    remaining = table.groupby("round").weights_remaining.unique()
    assert [list(v.round(2)) for v in remaining] == [[100.0], [80.84], [65.42]]  # (819 + 328 + 130) / 1952 in round 2
    summary = subprocess.run([script, "results", "--store", tmp_path / "runs"], capture_output=True, text=True)
    assert "kaiming_normal" in summary.stdout and "65.42" in summary.stdout
    grid_export = subprocess.run([script, "export", grid, "--store", tmp_path / "runs", "--out", tmp_path / "results"],
                                 capture_output=True, text=True)
    assert grid_export.stdout == f"grid grid: 8 runs → {tmp_path / 'results' / 'grid'}/\n", grid_export.stderr
    assert sorted(p.name for p in (tmp_path / "results" / "grid").iterdir()) == ["diagnostics.parquet", "grid.json", "layers.parquet", "masks.npz", "table.parquet"]
    grid.write_text(grid.read_text().replace("rounds: 3", "rounds: 4"))
    unfinished = subprocess.run([script, "export", grid, "--store", tmp_path / "runs", "--out", tmp_path / "results"],
                                capture_output=True, text=True)
    assert unfinished.returncode == 2 and "grid grid is not finished" in unfinished.stderr


def test_flags_override_yaml(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("inits: xavier_normal\nseeds: [0]\nrounds: 5\n")
    store = tmp_path / "runs"
    assert main(["run", "--config", str(grid), *SMALL_FLAGS, "--store", str(store), "--data-root",
                 str(tmp_path), "--no-progress"]) == 0
    assert "1 runs: 2 rounds trained" in capsys.readouterr().out  # --rounds 2 beat the YAML's 5


def test_missing_grid_axes_and_bad_results_paths(tmp_path, capsys):
    assert main(["run", "--dataset", "mnist1d"]) == 2
    assert "needs --model, --inits, --seeds" in capsys.readouterr().err
    assert main(["results", "--store", str(tmp_path / "nowhere")]) == 2
    assert "run store not found" in capsys.readouterr().err
    (tmp_path / "runs").mkdir()
    assert main(["results", "--store", str(tmp_path / "runs")]) == 2
    assert "no finished rounds in" in capsys.readouterr().err
    assert main(["run", *SMALL_FLAGS, "--rounds", "1", "--inits", "lecun_normal", "--seeds", "0",
                 "--store", str(tmp_path / "runs"), "--data-root", str(tmp_path), "--no-progress"]) == 0
    assert main(["results", "--store", str(tmp_path / "runs"), "--out", str(tmp_path / "r.xlsx")]) == 2
    assert "must end in .parquet or .csv" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["inits", "conditions", "run", "results", "export", "ticket", "verify", "data",
                                     "paper"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0 and f"usage: ticketlib {command}" in capsys.readouterr().out
