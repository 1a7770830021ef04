"""The protocol behaviours, one by one, and the 2020 code's protocol as it ran.

`seed2020_as_run` is also checked against a plain re-implementation of the 2020 code's loop
(one torch.optim.Adam, masks applied after every step, prune at the start of every 5th epoch,
reset to the saved PyTorch-default draw): the engine must give the same masks and weights.
"""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import ticketlib.engine.train as train_module
import ticketlib.imp.rounds as imp
from ticketlib.data.datasets import load_dataset
from ticketlib.engine.train import epoch_order
from ticketlib.imp.export import load_results
from ticketlib.imp.protocols import PROTOCOLS, make_run
from ticketlib.nets.inits import initialize, pytorch_default_draw
from ticketlib.nets.models import build_model, prunable_tensors
from ticketlib.nets.pruning import kept, prune_count

SMALL = dict(num_samples=1000, hidden=[32, 16], epochs=1, rounds=3)  # 800 examples: 13 steps of 60 an epoch


@pytest.fixture(scope="module")
def raw_data(data_root):
    """MNIST-1D with no validation split and no normalisation, as the seed2020 protocols load it."""
    return load_dataset("mnist1d", 1000, 0, "none", root=data_root)


def as_run(init="xavier_normal", seed=0, protocol="seed2020_as_run", **overrides):
    return make_run("mnist1d", "lenet_300_100", init, seed, protocol, **{**SMALL, **overrides})


def model_of(config):
    return build_model("lenet_300_100", (40,), 10, config["hidden"], config["activation"])


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_seed2020_differs_from_as_run_only_in_the_rewind_target():
    fixed, buggy = PROTOCOLS["seed2020"], PROTOCOLS["seed2020_as_run"]
    assert {k for k in fixed if fixed[k] != buggy[k]} == {"rewind_target"}
    assert (buggy["rewind_target"], fixed["rewind_target"]) == ("pytorch_default", "init")
    assert {k: buggy[k] for k in ("optimizer_state", "input_norm", "prune_rounding", "data_order", "val_size",
                                  "eval_every_epochs", "eval_splits", "prune_biases", "activation", "epochs")} == dict(
        optimizer_state="keep", input_norm="none", prune_rounding="floor", data_order="continuous", val_size=0,
        eval_every_epochs=1, eval_splits=["train", "test"], prune_biases=True, activation="leaky_relu", epochs=5)
    assert set(buggy["prune_rates"].values()) == {0.2} and buggy["rounds"] == 20 and buggy["lr"] == 1.2e-3


def test_frankle2019_keeps_what_it_computes():
    config = PROTOCOLS["frankle2019"]
    assert {k: config[k] for k in ("rewind_target", "optimizer_state", "input_norm", "prune_rounding",
                                   "data_order", "eval_every", "eval_every_epochs", "eval_splits")} == dict(
        rewind_target="init", optimizer_state="reset", input_norm="standardize", prune_rounding="half_up",
        data_order="per_round", eval_every=100, eval_every_epochs=None, eval_splits=["val", "test"])


def test_as_run_rewinds_to_the_pytorch_default_draw_and_the_fix_to_the_scheme(raw_data, tmp_path, spy):
    from ticketlib.store.runs import Store
    buggy, fixed = as_run(), as_run(protocol="seed2020")
    for config in (buggy, fixed):
        imp.run_cohort([config], Store(tmp_path / config["protocol"]), raw_data)
    model = model_of(buggy)
    theta0 = initialize(model, "xavier_normal", 1.0, "default", 0, "init")
    default = pytorch_default_draw(model, 0, "init")
    (b0,), (b1,), (b2,), (f0,), (f1,), (f2,) = spy
    assert same(b0["state"], theta0) and same(f0["state"], theta0)  # round 0: the scheme, in both
    assert same(b1["state"], default) and same(b2["state"], default)  # weights and biases
    assert same(f1["state"], theta0) and same(f2["state"], theta0)
    # the default draw: PyTorch's U(±1/√fan_in) weights, independent of the scheme's; θ0's biases
    w, w0 = default["hidden.0.weight"], theta0["hidden.0.weight"]
    assert w.abs().max() <= 1 / math.sqrt(40) and w.std().item() == pytest.approx(1 / math.sqrt(120), rel=0.05)
    uniform0 = initialize(model, "kaiming_uniform", 1.0, "default", 0, "init")["hidden.0.weight"]
    for scheme in (w0, uniform0):  # 1,280 pairs: |r| under 0.15 is 5 standard errors (one generator would give ~1)
        assert abs(np.corrcoef(w.flatten(), scheme.flatten())[0, 1]) < 0.15
    assert all(torch.equal(default[k], theta0[k]) for k in theta0 if k.endswith(".bias"))
    # the two protocols agree up to the first rewind: same dense round, same first mask
    runs = [Store(tmp_path / c["protocol"]).run(c) for c in (buggy, fixed)]
    assert runs[0].metrics(0) == runs[1].metrics(0) and same(runs[0].tensors(1, "mask"), runs[1].tensors(1, "mask"))
    assert runs[0].metrics(1) != runs[1].metrics(1)


@pytest.fixture
def spy(monkeypatch):
    stacks = []

    def recording_train(model, jobs, data, config, start, stop, device="cpu", order_offset=0, on_steps=None):
        stacks.append([dict(state={k: v.clone() for k, v in job.state.items()}, optimizer=job.optimizer,
                            offset=order_offset) for job in jobs])
        return train_module.train(model, jobs, data, config, start, stop, device, order_offset)
    monkeypatch.setattr(imp, "train", recording_train)
    return stacks


def test_adam_moments_carry_over_masked(raw_data, store, spy):
    config = as_run(rounds=3)
    imp.run_cohort([config], store, raw_data)
    run = store.run(config)
    steps = 800 // 60
    assert spy[0][0]["optimizer"] is None
    for r in (1, 2):
        carried = spy[r][0]["optimizer"]
        assert same(carried, run.tensors(r - 1, "optimizer")) and int(carried["steps"]) == r * steps
        end, mask = run.tensors(r, "optimizer"), run.tensors(r, "mask")
        assert int(end["steps"]) == (r + 1) * steps
        for name, m in mask.items():  # newly pruned entries' moments were zeroed, and stayed zero
            assert (end[f"{name}.exp_avg"][~m] == 0).all() and (end[f"{name}.exp_avg_sq"][~m] == 0).all()
            assert (end[f"{name}.exp_avg_sq"][m] > 0).any()
    fresh = as_run(rounds=2, optimizer_state="reset")
    imp.run_cohort([fresh], store, raw_data)
    assert spy[-1][0]["optimizer"] is None and not store.run(fresh).round_path(0).joinpath("optimizer.pt").exists()


def test_floor_rounding_of_prune_counts(raw_data, store):
    assert (prune_count(0.2, 8), prune_count(0.2, 8, "floor")) == (2, 1)
    assert (prune_count(0.2, 7), prune_count(0.2, 7, "floor")) == (1, 1)
    for rounding, expected in (("floor", [10, 8, 7, 6]), ("half_up", [10, 8, 6, 5])):
        config = as_run(rounds=4, prune_rounding=rounding)
        imp.run_cohort([config], store, raw_data)
        assert [kept(store.run(config).tensors(r, "mask"))["out.bias"] for r in range(4)] == expected


@pytest.mark.parametrize("order,expected", [("continuous", [0, 1, 2, 3, 4, 5]), ("per_round", [0, 1, 0, 1, 0, 1])])
def test_data_order_across_round_boundaries(raw_data, store, monkeypatch, order, expected):
    epochs = []

    def recording_order(seed, n, epoch):
        epochs.append(epoch)
        return epoch_order(seed, n, epoch)
    monkeypatch.setattr(train_module, "epoch_order", recording_order)
    imp.run_cohort([as_run(epochs=2, data_order=order)], store, raw_data)
    assert epochs == expected
    assert not torch.equal(epoch_order(0, 800, 1), epoch_order(0, 800, 2))


def test_inputs_unscaled_under_seed2020(tmp_path):
    images = (np.arange(20 * 4 * 4) % 52).astype(np.uint8).reshape(20, 4, 4) * 5
    path = tmp_path / "img.npz"
    np.savez(path, x_train=images, y_train=np.arange(20) % 2, x_test=images[:2], y_test=np.zeros(2, int))
    config = make_run(f"npz:{path}", "lenet_300_100", "xavier_normal", 0, "seed2020_as_run")
    from ticketlib.imp.grid import data_key
    data = load_dataset(*data_key(config), root=tmp_path)
    assert torch.equal(data.x_test.flatten(), torch.from_numpy(images[:2]).float().flatten() / 255)
    assert data.x_train.min() == 0 and data.x_train.max() == 1  # pixels in [0, 1], as the 2020 code had them
    standardized = load_dataset(*data_key({**config, "input_norm": "standardize"}), root=tmp_path)
    assert standardized.x_train.mean().abs() < 1e-6


def test_every_epoch_has_train_and_test_accuracy(raw_data, store):
    config = as_run(epochs=2, rounds=2)
    imp.run_cohort([config], store, raw_data)
    table = load_results(store.root)
    assert table.iteration.tolist() == [13, 26, 13, 26]  # the end of every epoch, per round
    assert table.train_acc.notna().all() and table.test_acc.notna().all() and table.val_loss.isna().all()
    assert table.groupby("round").is_early_stop.apply(list).tolist() == [[False, True]] * 2  # right before pruning
    # the full training split: its accuracy is what evaluating all 800 examples gives
    model = model_of(config)
    weights = store.run(config).tensors(1, "weights")
    model.load_state_dict(weights)
    with torch.no_grad():
        expected = (model(raw_data.x_train).argmax(1) == raw_data.y_train).float().mean().item()
    assert table.train_acc.iloc[-1] == pytest.approx(expected, abs=1 / 800)


def test_iteration_cadence_has_no_train_accuracy(small_config, small_data, store):
    config = small_config(rounds=1)
    imp.run_cohort([config], store, small_data)
    table = load_results(store.root)
    assert table.iteration.tolist() == [0, 20, 40, 60] and table.train_acc.isna().all()
    assert table.val_loss.notna().all()
    # frankle2019 tests at the early stop and the end only (test_at: early_stop)
    assert table.test_acc.notna().tolist() == (table.is_early_stop | (table.iteration == 60)).tolist()
    assert len(load_results(store.root).columns) == len(table.columns)


def reference_2020(config, data, rounds):
    """The 2020 code's training loop, written plainly (main.py, Trainer.py, pruning.py)."""
    model = model_of(config)
    initialize(model, config["init"], config["scale"], config["bias_init"], config["seed"], "init")
    default = pytorch_default_draw(model_of(config), config["seed"], "init")
    masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    batch, per_epoch, epochs = config["batch_size"], len(data.y_train) // config["batch_size"], config["epochs"]
    for epoch in range(rounds * epochs):
        if epoch % epochs == 0 and epoch > 0:  # update_mask, reset_weights, apply_mask
            with torch.no_grad():
                for name, p in model.named_parameters():
                    alive = masks[name].flatten()
                    scores = torch.where(alive, p.abs().flatten(), torch.tensor(math.inf))
                    drop = torch.argsort(scores, stable=True)[:int(0.2 * int(alive.sum()))]
                    alive = alive.clone()
                    alive[drop] = False
                    masks[name] = alive.view_as(p)
                model.load_state_dict(default)
                for name, p in model.named_parameters():
                    p.mul_(masks[name])
        order = epoch_order(config["seed"], len(data.y_train), epoch)
        for step in range(per_epoch):
            idx = order[step * batch:(step + 1) * batch]
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            optimizer.step()
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.mul_(masks[name])
    return model.state_dict(), masks


@pytest.mark.slow  # trains several rounds end to end
@pytest.mark.parametrize("epochs,rounds", [(2, 3), (1, 8)])  # 8 rounds: the last ones train block-sparse
def test_as_run_matches_a_plain_reimplementation_of_the_2020_loop(raw_data, store, epochs, rounds):
    config = as_run(init="kaiming_uniform", seed=3, epochs=epochs, rounds=rounds)
    assert set(prunable_tensors(model_of(config), config["prune_biases"])) == {
        n for n, _ in model_of(config).named_parameters()}  # every tensor pruned, biases too
    imp.run_cohort([config], store, raw_data)
    run = store.run(config)
    weights, masks = reference_2020(config, raw_data, rounds)
    assert same(run.tensors(rounds - 1, "mask"), masks)
    if rounds == 8:
        assert train_module.sparse_layers(model_of(config), masks) == ("hidden.0", "hidden.1", "out")
    ours = run.tensors(rounds - 1, "weights")
    for name in weights:  # the same arithmetic up to summation order and torch's sqrt rounding
        assert torch.allclose(ours[name], weights[name], rtol=1e-4, atol=1e-5), name


@pytest.mark.slow  # trains several rounds end to end
def test_test_at_early_stop_gives_the_same_numbers_where_it_measures(small_config, small_data, tmp_path):
    """Four tickets in one stack, into block-sparse rounds, trained past their best (lr 5e-3): test
    accuracy only at the early-stop and last rows, equal there to evaluating at every point; every
    other number unchanged."""
    from ticketlib.store.runs import Store
    tables = {}
    for mode in ("every", "early_stop"):
        configs = [small_config(init=init, seed=seed, rounds=8, test_at=mode, iterations=200, lr=5e-3)
                   for init in ("xavier_normal", "kaiming_uniform") for seed in (0, 1)]
        store = Store(tmp_path / mode)
        imp.run_cohort(configs, store, small_data)
        tables[mode] = load_results(store.root).sort_values(["init", "seed", "round", "iteration"]).reset_index(drop=True)
    every, lazy = tables["every"], tables["early_stop"]
    last = lazy.groupby(["init", "seed", "round"]).iteration.transform("max") == lazy.iteration
    measured = lazy.is_early_stop | last
    assert lazy.test_acc.notna().tolist() == measured.tolist()
    assert (lazy.test_acc[measured] == every.test_acc[measured]).all()
    assert 0 < (lazy.is_early_stop & ~last).sum() and (~measured).sum() > measured.sum()
    same_columns = ["iteration", "train_loss", "val_loss", "val_acc", "is_early_stop", "weights_remaining"]
    assert every[same_columns].equals(lazy[same_columns])
    assert train_module.sparse_layers(model_of(configs[0]), Store(tmp_path / "early_stop").run(configs[0]).tensors(7, "mask"))


@pytest.mark.slow  # trains several rounds end to end
def test_bf16_precision_trains_close_to_fp32_and_reproducibly(small_config, small_data, tmp_path):
    """bf16 matmuls (fp32 weights, Adam and loss), into block-sparse rounds: deterministic, a
    ticket's numbers independent of its stack, accuracy near fp32's."""
    from ticketlib.store.runs import Store
    def run(precision, name, seeds=(0, 1)):
        configs = [small_config(seed=seed, rounds=7, precision=precision) for seed in seeds]
        store = Store(tmp_path / name)
        imp.run_cohort(configs, store, small_data)
        return load_results(store.root).sort_values(["seed", "round", "iteration"]).reset_index(drop=True)
    bf16, again, alone, fp32 = run("bf16", "a"), run("bf16", "b"), run("bf16", "c", seeds=(1,)), run("fp32", "d")
    measures = ["train_loss", "val_loss", "test_acc"]
    assert bf16[measures].equals(again[measures])
    assert bf16[bf16.seed == 1][measures].reset_index(drop=True).equals(alone[measures])
    assert not bf16[measures].equals(fp32[measures])
    stops = [t[t.is_early_stop].test_acc.mean() for t in (bf16, fp32)]
    assert abs(stops[0] - stops[1]) < 0.03
