"""The factors of issue 24: data order apart from θ0, the relative learning-rate rule, the deep
model, per-layer weight counts in the exports, sub-grids in grid files, sameness and censoring."""
import numpy as np
import pandas as pd
import pytest
import torch

from ticketlib.analysis.results import load_grid
from ticketlib.analysis.stats import censoring, early_stops, equivalence, t_interval
from ticketlib.cli import main
from ticketlib.config import run_id
from ticketlib.engine.adam import Adam
from ticketlib.engine.train import Job, train
from ticketlib.errors import TicketError
from ticketlib.imp.export import export_grid
from ticketlib.imp.grid import file_configs, run_grid
from ticketlib.imp.protocols import make_run
from ticketlib.nets.models import build_model, prunable_tensors


def test_data_seed_equal_to_the_seed_or_left_out_is_the_same_run(small_config):
    base = small_config(seed=3)
    assert "data_seed" not in base and "lr_rule" not in base  # earlier runs keep their ids
    assert run_id(small_config(seed=3, data_seed=3)) == run_id(base)
    assert run_id(small_config(seed=3, data_seed=4)) != run_id(base)
    assert run_id(small_config(seed=3, lr_rule="constant")) == run_id(base)
    assert run_id(small_config(seed=3, lr_rule="relative")) != run_id(base)
    for bad in (dict(data_seed=-1), dict(data_seed="x"), dict(lr_rule="cosine")):
        with pytest.raises(TicketError, match="data_seed|lr_rule"):
            small_config(**bad)


def test_data_seed_changes_the_order_and_not_the_draw(small_config, small_data, store):
    configs = [small_config(seed=0, rounds=1), small_config(seed=0, data_seed=1, rounds=1),
               small_config(seed=1, rounds=1)]
    run_grid(configs, store, "cpu", workers=1, progress=False)
    rows = [store.run(c).metrics(0)["rows"] for c in configs]
    assert rows[0][0]["val_loss"] == rows[1][0]["val_loss"] != rows[2][0]["val_loss"]  # θ0: the seed's
    assert rows[0][-1]["val_loss"] != rows[1][-1]["val_loss"]  # another order, other training
    # seed 0 drawing θ0 with seed 1's order: the order alone differs from seed 1's run
    swapped = small_config(seed=1, data_seed=0, rounds=1)
    run_grid([swapped], store, "cpu", workers=1, progress=False)
    assert store.run(swapped).metrics(0)["rows"][0]["val_loss"] == rows[2][0]["val_loss"]


def stack_of_one(small_data, lr_factors=None, lr=1e-3):
    torch.manual_seed(0)
    model = build_model("lenet_300_100", (40,), 10, [32, 16])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mask = {n: torch.ones_like(state[n], dtype=torch.bool) for n in prunable_tensors(model, False)}
    config = make_run("mnist1d", "lenet_300_100", "xavier_normal", 0, num_samples=1000, val_size=80,
                      iterations=30, eval_every=10, hidden=[32, 16], lr=lr)
    out, = train(model, [Job(state, mask, 0, lr_factors=lr_factors)], small_data, config, 0, 30)
    return out


def test_relative_lr_multiplies_each_layers_step(small_data):
    plain = stack_of_one(small_data)
    ones = stack_of_one(small_data, {"hidden.0.weight": 1.0, "hidden.1.weight": 1.0, "out.weight": 1.0})
    assert all(torch.equal(plain.weights[n], ones.weights[n]) for n in plain.weights)  # factor 1: Adam's own bits
    # Adam with an elementwise multiplier steps as Adam at the multiplied lr; a parameter without one keeps lr
    gen = torch.Generator().manual_seed(0)
    weights, bias = torch.randn(2, 50, 70, generator=gen), torch.randn(2, 50, generator=gen)
    factor = torch.tensor([2.0, 0.5]).view(2, 1, 1).expand(2, 50, 70).contiguous()
    scaled = [weights.clone(), bias.clone()]
    adam = Adam(scaled, lr=1e-3, lr_scales=[factor, None])
    references = [[weights[k].clone()] for k in range(2)]
    plain_adams = [Adam(ref, lr=1e-3 * f) for ref, f in zip(references, (2.0, 0.5))]
    for _ in range(3):
        grads = torch.randn(2, 50, 70, generator=gen), torch.randn(2, 50, generator=gen)
        for p, g in zip(scaled, grads):
            p.grad = g.clone()
        adam.step()
        for k, (ref, ref_adam) in enumerate(zip(references, plain_adams)):
            ref[0].grad = grads[0][k].clone()
            ref_adam.step()
    for k, f in enumerate((2.0, 0.5)):
        assert torch.allclose(scaled[0][k], references[k][0], rtol=0, atol=1e-6)
    unscaled = [bias.clone()]
    same = Adam(unscaled, lr=1e-3)
    assert not torch.equal(scaled[1], bias)  # biases stepped, at the plain lr (checked bit for bit below)
    gen = torch.Generator().manual_seed(0)
    torch.randn(2, 50, 70, generator=gen), torch.randn(2, 50, generator=gen)
    for _ in range(3):
        _, g = torch.randn(2, 50, 70, generator=gen), torch.randn(2, 50, generator=gen)
        unscaled[0].grad = g.clone()
        same.step()
    assert torch.equal(scaled[1], unscaled[0])


def test_relative_rule_trains_in_a_grid(small_config, small_data, store):
    configs = [small_config(init="normal", lr_rule="relative", rounds=2), small_config(init="normal", rounds=2)]
    run_grid(configs, store, "cpu", workers=1, progress=False)
    finals = [store.run(c).metrics(1)["rows"][-1]["val_loss"] for c in configs]
    assert finals[0] != finals[1] and all(np.isfinite(finals))


def test_deep_model_has_eight_hidden_layers_and_trains(small_config, small_data, store):
    model = build_model("mlp_8x100", (784,), 10)
    assert [m.out_features for m in model.hidden] == [100] * 8
    config = make_run("mnist1d", "mlp_8x100", "kaiming_normal", 0, num_samples=1000, val_size=80,
                      iterations=40, eval_every=20, rounds=2)
    assert config["hidden"] == [100] * 8
    run_grid([config], store, "cpu", workers=1, progress=False)
    mask = store.run(config).tensors(1, "mask")
    assert len(mask) == 9 and mask["hidden.3.weight"].float().mean() == pytest.approx(0.8, abs=1e-3)


def test_export_counts_weights_kept_per_layer_and_round(small_config, small_data, store, tmp_path, data_root):
    configs = [small_config(prune_scope="global"), small_config()]
    run_grid(configs, store, "cpu", workers=1, progress=False)
    export_grid("layers", configs, store.root, tmp_path, data_root)
    layers = load_grid("layers", tmp_path).layers()
    assert set(layers.tensor) == {"hidden.0.weight", "hidden.1.weight", "out.weight"}
    assert len(layers) == 2 * 3 * 3
    for config in configs:
        run = store.run(config)
        for r in range(3):
            got = layers[(layers.run_id == run_id(config)) & (layers["round"] == r)].set_index("tensor")
            for name, mask in run.tensors(r, "mask").items():
                assert got.kept[name] == int(mask.sum()) and got["size"][name] == mask.numel()
    layerwise = layers[(layers.prune_scope == "layerwise") & (layers["round"] == 1)].set_index("tensor").fraction
    assert layerwise["hidden.0.weight"] == pytest.approx(0.8, abs=1e-3) and layerwise["out.weight"] == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", ""])
def test_grid_names_are_plain_file_names(name, tmp_path, store):
    with pytest.raises(TicketError, match="plain file name"):
        export_grid(name, [], store.root, tmp_path)


def test_grid_file_sub_grids_merge_over_the_file(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("dataset: mnist1d\nmodel: lenet_300_100\nseeds: 0-1\nrounds: 2\niterations: 60\n"
                    "grids:\n  - {inits: [xavier_normal, normal], lr: 0.0003}\n"
                    "  - {inits: [xavier_normal], scales: [4]}\n  - {inits: [xavier_normal], lr: 0.0003}\n")
    configs = file_configs(str(path))
    assert len(configs) == 2 * 2 + 2  # the third sub-grid repeats the first's runs: each run once
    assert sorted({(c["init"], c["scale"], c["lr"]) for c in configs}) == [
        ("normal", 1.0, 3e-4), ("xavier_normal", 1.0, 3e-4), ("xavier_normal", 4.0, 1.2e-3)]
    assert {c["seed"] for c in configs} == {0, 1} and {c["iterations"] for c in configs} == {60}
    assert len(file_configs(str(path), {"seeds": (5,)})) == 3  # flags given beside --config override every sub-grid
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: mnist1d\ngrids: {inits: normal}\n")
    assert main(["run", "--config", str(bad)]) == 2


def test_equivalence_is_tost_on_the_paired_differences():
    d = [0.001, -0.002, 0.0015, 0.0005, -0.001]
    result = equivalence(d, margin=0.005)
    assert result["equivalent"] and (result["low90"], result["high90"]) == pytest.approx(t_interval(d, 0.90))
    assert not equivalence(d, margin=0.001)["equivalent"]  # the interval reaches past a tighter margin
    assert not equivalence([0.01, 0.012, 0.011], margin=0.005)["equivalent"]  # a real difference
    assert not equivalence([0.001], margin=0.005)["equivalent"]  # one seed proves nothing
    assert equivalence(d[:3], margin=0.005)["p_tost"] < 0.05  # three seeds pass TOST here ...
    assert not equivalence(d[:3], margin=0.005)["equivalent"]  # ... but the study claims sameness from five
    # TOST at 5% ⇔ the 90% interval inside ±margin, over many random draws
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.normal(rng.uniform(-0.006, 0.006), 0.003, size=5)
        low, high = t_interval(d, 0.90)
        assert equivalence(d, 0.005)["equivalent"] == (low > -0.005 and high < 0.005)


def test_equivalence_holds_its_error_rate_at_the_margin():
    """A true difference at the margin is called equivalent in at most 5% of 5-seed experiments."""
    rng = np.random.default_rng(1)
    calls = [equivalence(rng.normal(0.005, 0.004, size=5), 0.005)["equivalent"] for _ in range(4000)]
    assert np.mean(calls) <= 0.055


def test_censoring_counts_early_stops_at_the_budgets_end():
    rows = []
    for run, stop_at in (("a", 300), ("b", 100), ("c", 300)):
        for it in (0, 100, 200, 300):
            rows.append(dict(run_id=run, init="x" if run != "c" else "y", seed=0, round=0, weights_remaining=100.0,
                             iteration=it, test_acc=0.9, val_loss=1.0, is_early_stop=it == stop_at, diverged=False))
    stops = early_stops(pd.DataFrame(rows))
    assert stops.set_index("run_id").censored.to_dict() == {"a": True, "b": False, "c": True}
    counts = censoring(stops).set_index("init")
    assert counts.loc["x"].tolist() == [1, 2, 50.0] and counts.loc["y"].tolist() == [1, 1, 100.0]


def test_variance_components_split_draw_from_order():
    from ticketlib.analysis.stats import variance_components
    rng = np.random.default_rng(3)
    rows = []
    for rep in range(200):  # many groups, each a 3 × 3 crossed grid: draw SD 0.02, order SD 0.005, noise 0.002
        draw, order = rng.normal(0, 0.02, 3), rng.normal(0, 0.005, 3)
        for s in range(3):
            for d in range(3):
                rows.append(dict(init="x", round=rep, seed=s, data_seed=d, weights_remaining=100.0,
                                 test_acc=0.9 + draw[s] + order[d] + rng.normal(0, 0.002)))
    parts = variance_components(pd.DataFrame(rows))
    assert len(parts) == 200 and (parts.draws == 3).all()
    assert np.sqrt((parts.sd_draw ** 2).mean()) == pytest.approx(0.02, rel=0.2)  # unbiased variances on average
    assert np.sqrt((parts.sd_order ** 2).mean()) == pytest.approx(0.005, rel=0.35)
    assert np.sqrt((parts.sd_residual ** 2).mean()) == pytest.approx(0.002, rel=0.2)
    assert (parts.share_draw > parts.share_order).mean() > 0.8 and (parts.p_draw < 0.05).mean() > 0.8
