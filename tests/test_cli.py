import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ticketlib.cli import main

SMALL_FLAGS = ["--dataset", "mnist1d", "--model", "lenet_300_100", "--num-samples", "1000",
               "--hidden", "32,16", "--iterations", "40", "--eval-every", "20", "--rounds", "2"]


def test_inits_lists_every_scheme_with_formula(capsys):
    assert main(["inits"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "(" in line and not line.startswith("16")]
    assert len(lines) >= 16
    assert any(line.startswith("kaiming_normal") and "N(0, 2/fan_in)" in line for line in lines)


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


def test_flags_override_yaml(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("inits: xavier_normal\nseeds: [0]\nrounds: 5\n")
    store = tmp_path / "runs"
    assert main(["run", "--config", str(grid), *SMALL_FLAGS, "--store", str(store), "--data-root",
                 str(tmp_path), "--no-progress"]) == 0
    assert "1 runs: 2 rounds trained" in capsys.readouterr().out  # --rounds 2 beat the YAML's 5


def write_npz(path, **arrays):
    base = dict(x_train=np.zeros((50, 4), np.float32), y_train=np.zeros(50, int),
                x_test=np.zeros((10, 4), np.float32), y_test=np.zeros(10, int))
    np.savez(path, **{k: v for k, v in {**base, **arrays}.items() if v is not None})
    return f"npz:{path}"


BAD_RUNS = {
    "unknown init": (["--inits", "he_normal"], "valid: kaiming_normal"),
    "unknown dataset": (["--dataset", "imagenet"], "valid: cifar10"),
    "unknown model": (["--model", "resnet18"], "valid: conv2, conv4, conv6, lenet_300_100"),
    "unknown protocol": (["--protocol", "frankle2018"], "valid: frankle2019, seed2020"),
    "unknown condition": (["--conditions", "ticket,shuffle"], "valid: random, reinit, ticket"),
    "unknown activation": (["--activation", "tanh"], "valid: leaky_relu, relu"),
    "unknown scope": (["--prune-scope", "sideways"], "valid: global, layerwise"),
    "unknown bias init": (["--bias-init", "ones"], "valid: default, zeros"),
    "rate above 1": (["--prune-rates", "fc=1.5"], "must be in (0, 1)"),
    "rate zero": (["--prune-rates", "output=0"], "must be in (0, 1)"),
    "rate kind": (["--prune-rates", "attention=0.2"], "need exactly the keys fc, conv, output"),
    "zero iterations": (["--iterations", "0"], "iterations must be a positive integer"),
    "negative iterations": (["--iterations", "-5"], "iterations must be a positive integer"),
    "zero rounds": (["--rounds", "0"], "rounds must be a positive integer"),
    "zero batch": (["--batch-size", "0"], "batch_size must be a positive integer"),
    "negative lr": (["--lr", "-1"], "lr must be a positive number"),
    "zero scale": (["--scales", "0"], "scale must be a positive number"),
    "two budgets": (["--epochs", "3"], "iterations or in epochs, not both"),
    "rewind past budget": (["--rewind-iteration", "40"], "rewind_iteration must be smaller"),
    "seeds not numbers": (["--seeds", "a,b"], "expected integers"),
    "missing npz": (["--dataset", "npz:/no/such.npz", "--num-samples", None], "npz file not found"),
    "missing config": (["--config", "/no/such.yaml"], "config file not found"),
}


def replace_flags(argv: list, changes: list) -> list:
    """argv with each (flag, value) of `changes` replacing that flag; a value of None drops it."""
    argv = list(argv)
    for flag, value in zip(changes[::2], changes[1::2]):
        if flag in argv:
            del argv[argv.index(flag):argv.index(flag) + 2]
        argv += [flag, value] if value is not None else []
    return argv


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_run_input_is_one_clear_line(case, tmp_path, capsys):
    changes, message = BAD_RUNS[case]
    base = ["--inits", "xavier_normal", "--seeds", "0", *SMALL_FLAGS, "--store", str(tmp_path / "runs"),
            "--data-root", str(tmp_path)]
    assert main(["run", "--no-progress", *replace_flags(base, changes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ticketlib: error:") and message in err, err
    assert not list(tmp_path.glob("runs/*/round_*")), "no round folder was written"


@pytest.mark.parametrize("arrays,message", [
    (dict(y_test=None), "lacks array(s) y_test"),
    (dict(y_train=np.zeros(49, int)), "x_train has 50 rows but y_train has 49"),
])
def test_bad_npz_through_the_cli(tmp_path, capsys, arrays, message):
    name = write_npz(tmp_path / "user.npz", **arrays)
    argv = ["run", "--dataset", name, "--model", "lenet_300_100", "--inits", "xavier_normal", "--seeds", "0",
            "--store", str(tmp_path / "runs"), "--no-progress"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("yaml_text,message", [
    ("inits: [xavier_normal]\nseeds: [0]\nlearning_rate: 0.1\n", "unknown key 'learning_rate'"),
    ("inits: [xavier_normal\n", "not valid YAML"),
    ("- just\n- a list\n", "must hold a mapping"),
])
def test_bad_yaml(tmp_path, capsys, yaml_text, message):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml_text)
    assert main(["run", "--config", str(grid), *SMALL_FLAGS, "--store", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


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
