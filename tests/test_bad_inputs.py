"""Bad input, end to end: each case gives one clear error line and a non-zero exit.

Across the CLI's flags, YAML grid files, npz datasets and notebook parameters; nothing is
written to the store for any of them.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import SMALL_FLAGS

from ticketlib.cli import main

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def write_npz(path, **arrays):
    base = dict(x_train=np.zeros((50, 4), np.float32), y_train=np.arange(50) % 2,
                x_test=np.zeros((10, 4), np.float32), y_test=np.arange(10) % 2)
    np.savez(path, **{k: v for k, v in {**base, **arrays}.items() if v is not None})
    return f"npz:{path}"


BAD_RUNS = {
    "unknown init": (["--inits", "he_normal"], "valid: kaiming_normal"),
    "unknown dataset": (["--dataset", "imagenet"], "valid: cifar10"),
    "unknown model": (["--model", "resnet18"], "valid: conv2, conv4, conv6, lenet_300_100"),
    "unknown protocol": (["--protocol", "frankle2018"], "valid: frankle2019, seed2020, seed2020_as_run"),
    "unknown rewind target": (["--rewind-target", "kaiming"], "valid: init, pytorch_default"),
    "unknown optimizer state": (["--optimizer-state", "warm"], "valid: keep, reset"),
    "unknown input norm": (["--input-norm", "whiten"], "valid: none, standardize"),
    "unknown rounding": (["--prune-rounding", "ceil"], "valid: floor, half_up"),
    "unknown data order": (["--data-order", "sorted"], "valid: continuous, per_round"),
    "unknown eval split": (["--eval-splits", "val,holdout"], "eval_splits: unknown holdout; valid: train, val, test"),
    "two eval cadences": (["--eval-every-epochs", "1"], "give eval_every or eval_every_epochs, not both"),
    "val without split": (["--val-size", "0"], "eval_splits includes val but there is no validation split"),
    "late rewind to default": (["--rewind-iteration", "5", "--rewind-target", "pytorch_default"],
                               "late rewinding (rewind_iteration > 0) rewinds to the ticket's own weights"),
    "unknown condition": (["--conditions", "ticket,lottery"], "valid: copy, grasp, grasp_global"),
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
    "two budgets": (["--epochs", "3"], "give iterations or epochs, not both"),
    "rewind past budget": (["--rewind-iteration", "40"], "smaller than the iterations per round (40); got 40"),
    "zero width": (["--hidden", "0"], "hidden must be positive integers like 100,100 or 300; got '0'"),
    "unknown flag": (["--foo", "1"], "unrecognized arguments: --foo 1 (see ticketlib run --help)"),
    "abbreviated flag": (["--iteration", "5"], "unrecognized arguments: --iteration 5"),  # as a grid file's key would be
    "npz folder": (["--dataset", "npz:/", "--num-samples", None], "npz:/ is a folder; name the .npz file in it"),
    "seeds not numbers": (["--seeds", "a,b"], "--seeds: seeds must be an integer; got 'a'"),
    "seeds backwards": (["--seeds", "3-1"], "the range 3-1 runs backwards; write 1-3"),
    "missing npz": (["--dataset", "npz:/no/such.npz", "--num-samples", None], "npz file not found"),
    "missing config": (["--config", "/no/such.yaml"], "config file not found"),
    "unknown executor": (["--executor", "spark"], "valid: dask, local"),
    "scheduler without dask": (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --executor dask"),
    "zero workers": (["--workers", "0"], "workers must be a positive integer"),
    "rounds not a number": (["--rounds", "five"], "--rounds: rounds must be an integer; got 'five'"),
    "cuda without a gpu": (["--device", "cuda"], "--device cuda: this torch sees no CUDA GPU"),
    "not a device": (["--device", "gpu"], "--device gpu: not a device; use auto, cpu, cuda or cuda:N"),
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


BAD_NPZ = {
    "missing array": (dict(y_test=None), "lacks array(s) y_test"),
    "length mismatch": (dict(y_train=np.zeros(49, int)), "x_train has 50 rows but y_train has 49"),
    "float images": (dict(x_train=np.zeros((50, 4, 4), np.float32), x_test=np.zeros((10, 4, 4), np.float32)),
                     "user.npz: x_train must be uint8 images N×H×W(×C) or float N×D; got float32 (50, 4, 4)"),
    "uint8 vectors": (dict(x_train=np.zeros((50, 4), np.uint8), x_test=np.zeros((10, 4), np.uint8)),
                      "x_train must be uint8 images N×H×W(×C) or float N×D; got uint8 (50, 4)"),
    "not an archive": ("plain text", "is not a zip archive, not an npz archive"),
    "single array": (np.zeros(3), "is a single .npy array, not an npz archive"),
    "object array": (dict(y_test=np.array([{"a": 1}] * 10, dtype=object)), "holds object arrays, which are never unpickled"),
    "nan pixel": (dict(x_train=np.where(np.eye(50, 4) > 0, np.nan, 0).astype(np.float32)),
                  "x_train has NaN, infinite or beyond-float32 values in 4 example(s)"),
    "inf pixel": (dict(x_test=np.full((10, 4), np.inf, np.float32)), "x_test has NaN, infinite or beyond-float32 values in 10"),
    "beyond float32": (dict(x_train=np.where(np.eye(50, 4) > 0, 1e300, 0)), "x_train has NaN, infinite or beyond-float32"),
    "negative label": (dict(y_train=np.arange(50) % 2 - 1), "y_train has label -1; class indices start at 0"),
    "column labels": (dict(y_train=(np.arange(50) % 2)[:, None]), "y_train must be 1-D (one class index per example)"),
    "string labels": (dict(y_test=np.array(list("ab") * 5)), "y_test must hold integer class indices"),
    "float labels": (dict(y_train=np.arange(50) % 3 + 0.7), "y_train must hold integer class indices 0, 1, ...; got float64"),
    "one class": (dict(y_train=np.zeros(50, int)), "y_train holds only class 0; a classifier needs at least 2"),
    "other feature count": (dict(x_test=np.zeros((10, 10), np.float32)), "x_train's examples are (4,) but x_test's are (10,)"),
    "too few examples": (dict(x_train=np.zeros((5, 4), np.float32), y_train=np.arange(5) % 2), "has 5 examples; needs at least 20"),
    "unseen test class": (dict(y_test=np.arange(10) % 3), "y_test has label 2, which no training example has"),
    "empty test split": (dict(x_test=np.zeros((0, 4), np.float32), y_test=np.zeros(0, int)), "x_test has no examples"),
    "stray label": (dict(y_train=np.where(np.arange(50) == 7, 1000, np.arange(50) % 2)),
                    "labels must be 0 … K−1 with every class present; 998 of 0 … 1000 have no example (e.g. 2)"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz_through_the_cli(tmp_path, capsys, case):
    arrays, message = BAD_NPZ[case]
    if isinstance(arrays, dict):
        name = write_npz(tmp_path / "user.npz", **arrays)
    else:  # not an npz at all, under an .npz name
        path = tmp_path / "user.npz"
        path.write_text(arrays) if isinstance(arrays, str) else np.save(open(path, "wb"), arrays)
        name = f"npz:{path}"
    argv = ["run", "--dataset", name, "--model", "lenet_300_100", "--inits", "xavier_normal", "--seeds", "0",
            "--store", str(tmp_path / "runs"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "allow_pickle" not in err, err
    assert not list(tmp_path.glob("runs/*/round_*"))


@pytest.mark.parametrize("yaml_text,message", [
    ("inits: [xavier_normal]\nseeds: [0]\nlearning_rate: 0.1\n", "unknown key 'learning_rate'"),
    ("inits: [xavier_normal\n", "not valid YAML"),
    ("- just\n- a list\n", "must hold a mapping"),
    ("inits: [xavier_normal]\nseeds: [0]\nrounds: five\n", "grid.yaml: rounds must be an integer; got 'five'"),
    ("inits: [xavier_normal]\nseeds: [0]\nexecutor: spark\n", "unknown executor 'spark'"),
])
def test_bad_yaml(tmp_path, capsys, yaml_text, message):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml_text)
    assert main(["run", "--config", str(grid), *SMALL_FLAGS, "--store", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.slow
def test_bad_input_exits_non_zero_from_the_shell(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ticketlib", "run", *SMALL_FLAGS, "--inits", "he_normal",
                             "--seeds", "0", "--store", str(tmp_path / "runs")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("ticketlib: error: unknown init 'he_normal'")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("parameters,message", [
    (dict(grid="mnist_nope"), "no results for grid 'mnist_nope' in ../results; grids there: "),
    (dict(results_dir="../elsewhere"), "no results for grid 'mnist_main' in ../elsewhere; grids there: none"),
], ids=["grid", "results_dir"])
@pytest.mark.slow
def test_bad_notebook_parameters(tmp_path, parameters, message):
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks")
    shutil.copytree(NOTEBOOKS.parent / "results", tmp_path / "results")
    argv = [sys.executable, "-m", "papermill", "03_imp.ipynb", str(tmp_path / "out.ipynb"), "--cwd", ".",
            "--no-progress-bar", "-y", str(parameters)]
    result = subprocess.run(argv, cwd=tmp_path / "notebooks", capture_output=True, text=True)
    assert result.returncode != 0
    assert f"TicketError: {message}" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "build").exists()  # nothing written


def test_a_missing_grid_file_lists_the_grids_there(tmp_path, monkeypatch, capsys):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mnist_main.yaml").write_text("dataset: mnist\n")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "mnist_mian"]) == 2
    assert "config file not found: configs/mnist_mian.yaml; grids in configs: mnist_main" in capsys.readouterr().err
