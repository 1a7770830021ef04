"""The mechanism probes of issue 25: instability analysis, the sign/shuffle/rescale conditions,
pruning at initialization, the no-retrain diagnostics."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from ticketlib.analysis.results import load_grid
from ticketlib.analysis.stats import instability
from ticketlib.config import run_id
from ticketlib.data.datasets import Data
from ticketlib.imp import pai
from ticketlib.imp.conditions import CONDITIONS, Round
from ticketlib.imp.export import export_grid
from ticketlib.imp.grid import run_grid
from ticketlib.imp.measures import path_errors
from ticketlib.nets.inits import initialize
from ticketlib.nets.models import build_model, prunable_tensors
from ticketlib.nets.pruning import kept, random_prune
from ticketlib.seeds import generator


def small_model(hidden=(32, 16)):
    return build_model("lenet_300_100", (40,), 10, list(hidden))


def test_identical_copies_have_no_barrier(small_data):
    model = small_model()
    state = initialize(model, "kaiming_normal", 1.0, "default", 0, "init")
    mask = {n: torch.ones_like(state[n], dtype=torch.bool) for n in prunable_tensors(model, False)}
    errors = path_errors(model, state, state, mask, small_data)
    assert len(errors) == 11 and len(set(errors)) == 1
    table = pd.DataFrame(dict(run_id="a", round=0, alpha=np.linspace(0, 1, 11), test_error=errors))
    assert instability(table).barrier.iloc[0] == 0


def two_minima():
    """A toy with two separate minima: y = 1 where x0 = +1, 0 where x0 = −1. Network a reads x0
    through hidden unit 0 (relu(4·x0 − 3)), network b, the same function, through unit 1. Halfway
    each unit gets half the input weight, 2 − 3 < 0 silences both, and every positive is lost."""
    sign = torch.tensor([1.0, -1.0]).repeat_interleave(20)
    xs = torch.stack([sign, torch.linspace(-1, 1, 40)], 1)
    y = (sign > 0).long()
    data = Data(xs, y, xs[:0], y[:0], xs, y, 2)
    model = build_model("lenet_300_100", (2,), 2, [2])
    a = {"hidden.0.weight": torch.tensor([[4.0, 0.0], [0.0, 0.0]]), "hidden.0.bias": torch.tensor([-3.0, -3.0]),
         "out.weight": torch.tensor([[0.0, 0.0], [5.0, 0.0]]), "out.bias": torch.tensor([0.5, 0.0])}
    b = {"hidden.0.weight": torch.tensor([[0.0, 0.0], [4.0, 0.0]]), "hidden.0.bias": torch.tensor([-3.0, -3.0]),
         "out.weight": torch.tensor([[0.0, 0.0], [0.0, 5.0]]), "out.bias": torch.tensor([0.5, 0.0])}
    return model, a, b, data


def test_two_separate_minima_have_a_barrier():
    model, a, b, data = two_minima()
    mask = {n: torch.ones_like(a[n], dtype=torch.bool) for n in prunable_tensors(model, False)}
    errors = path_errors(model, a, b, mask, data)
    assert errors[0] == errors[-1] == 0.0  # both ends classify every example
    assert errors[5] == 0.5  # the midpoint answers 0 for all: the positives are lost
    table = pd.DataFrame(dict(run_id="a", round=3, alpha=np.linspace(0, 1, 11), test_error=errors))
    assert instability(table).set_index("round").barrier[3] == pytest.approx(max(errors))


def a_round(config, theta0, ticket_mask, data=None, r=2, model=None):
    model = model or small_model()
    return Round(config, r, lambda name: None, ticket_mask, prunable_tensors(model, False), model, theta0, data)


@pytest.fixture
def drawn(small_config):
    config = small_config(init="kaiming_normal")
    model = small_model()
    theta0 = initialize(model, "kaiming_normal", 1.0, "default", 0, "init")
    reinit = initialize(model, "kaiming_normal", 1.0, "default", 0, "reinit")
    full = {n: torch.ones_like(theta0[n], dtype=torch.bool) for n in prunable_tensors(model, False)}
    mask = random_prune(full, {n: m.numel() // 5 for n, m in full.items()}, generator("test-mask"))
    return config, model, theta0, reinit, mask


def test_sign_kept_reinit_takes_fresh_magnitudes_with_theta0s_signs(drawn):
    config, model, theta0, reinit, mask = drawn
    start = CONDITIONS["sign_kept"].start(a_round(config, theta0, mask), reinit, mask)
    assert CONDITIONS["sign_kept"].draw == "reinit"
    for n in mask:
        assert torch.equal(start[n].abs(), reinit[n].abs()) and torch.equal(start[n] < 0, theta0[n] < 0)
    assert torch.equal(start["out.bias"], reinit["out.bias"])  # biases are the draw's, untouched


def test_random_signs_keep_magnitudes_and_flip_about_half(drawn):
    config, model, theta0, _, mask = drawn
    rule = CONDITIONS["random_signs"].start
    start = rule(a_round(config, theta0, mask), theta0, mask)
    for n in mask:
        assert torch.equal(start[n].abs(), theta0[n].abs())
    flipped = torch.cat([((start[n] < 0) != (theta0[n] < 0)).flatten() for n in mask]).float().mean()
    assert 0.45 < flipped < 0.55
    later = rule(a_round(config, theta0, mask, r=5), theta0, mask)
    assert all(torch.equal(later[n], start[n]) for n in mask)  # drawn once per run, not per round


def test_shuffle_permutes_theta0s_kept_values_within_each_tensor(drawn):
    config, model, theta0, _, mask = drawn
    start = CONDITIONS["shuffled"].start(a_round(config, theta0, mask), theta0, mask)
    for n, m in mask.items():
        assert torch.equal(start[n][m].sort().values, theta0[n][m].sort().values)
        assert not torch.equal(start[n][m], theta0[n][m])
        assert torch.equal(start[n][~m], theta0[n][~m])  # pruned positions untouched (the engine zeroes them)


def test_rescaled_rewinding_restores_each_units_fan_in(drawn):
    config, model, theta0, _, mask = drawn
    start = CONDITIONS["rescaled"].start(a_round(config, theta0, mask), theta0, mask)
    for n, m in mask.items():
        fan_in = m.shape[1]
        for row in range(m.shape[0]):
            k = int(m[row].sum())
            if k:
                assert torch.allclose(start[n][row], theta0[n][row] * math.sqrt(fan_in / k))


def by_hand_model():
    """784 → 3 → 2 → 10 is too big to do by hand; 4 → 3 → 2 inputs with 2 classes is not."""
    model = build_model("lenet_300_100", (4,), 2, [3])
    gen = torch.Generator().manual_seed(5)
    state = {n: torch.randn(p.shape, generator=gen) for n, p in model.named_parameters()}
    x, y = torch.randn(8, 4, generator=gen), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    return model, state, x, y


def test_snip_and_grasp_scores_match_a_hand_computation():
    model, state, x, y = by_hand_model()
    w1, b1, w2, b2 = (state[n].double() for n in ("hidden.0.weight", "hidden.0.bias", "out.weight", "out.bias"))

    def loss(a, b, temperature=1.0):
        return F.cross_entropy((F.relu(x.double() @ a.T + b1) @ b.T + b2) / temperature, y)
    full = {n: torch.ones_like(state[n], dtype=torch.bool) for n in ("hidden.0.weight", "out.weight")}
    snip = pai.snip_scores(model, state, full, x, y)
    g1, g2 = torch.autograd.grad(loss(w1.requires_grad_(), w2.requires_grad_()), (w1, w2))
    assert torch.allclose(snip["hidden.0.weight"], (w1 * g1).abs().detach()) and torch.allclose(snip["out.weight"], (w2 * g2).abs().detach())
    # GraSP: θ ⊙ Hg from the full Hessian of the tempered loss over both weight matrices
    flat = torch.cat([w1.detach().flatten(), w2.detach().flatten()])
    split = lambda v: (v[:12].view(3, 4), v[12:].view(2, 3))  # noqa: E731
    tempered = lambda v: loss(*split(v), temperature=200.0)  # noqa: E731
    g = torch.autograd.functional.jacobian(tempered, flat)
    hg = torch.autograd.functional.hessian(tempered, flat) @ g
    grasp = pai.grasp_scores(model, state, full, x, y)
    expected = flat * hg
    assert torch.allclose(grasp["hidden.0.weight"].flatten(), expected[:12], rtol=1e-6, atol=1e-18)
    assert torch.allclose(grasp["out.weight"].flatten(), expected[12:], rtol=1e-6, atol=1e-18)


def test_synflow_scores_match_the_linear_path_count():
    model, state, _, _ = by_hand_model()
    full = {n: torch.ones_like(state[n], dtype=torch.bool) for n in ("hidden.0.weight", "out.weight")}
    scores = pai.synflow_scores(model, state, full, (4,))
    a1, a2 = state["hidden.0.weight"].double().abs(), state["out.weight"].double().abs()
    # with |θ| and an all-ones input every unit is active: R = 1ᵀ(|W2|(|W1|1 + |b1|) + |b2|)
    assert torch.allclose(scores["hidden.0.weight"], a1 * a2.sum(0).unsqueeze(1) * torch.ones(1, 4, dtype=torch.float64))
    hidden = a1 @ torch.ones(4, dtype=torch.float64) + state["hidden.0.bias"].double().abs()
    assert torch.allclose(scores["out.weight"], a2 * hidden.unsqueeze(0))


def test_prune_at_init_keeps_the_best_scores_at_the_counts_given(small_data):
    model = small_model()
    theta0 = initialize(model, "kaiming_normal", 1.0, "default", 0, "init")
    counts = {"hidden.0.weight": 300, "hidden.1.weight": 100, "out.weight": 60}
    for method in pai.METHODS:
        layerwise = pai.prune_at_init(method, model, theta0, counts, "layerwise", small_data, 0)
        assert kept(layerwise) == counts, method
        pooled = pai.prune_at_init(method, model, theta0, counts, "global", small_data, 0)
        assert sum(kept(pooled).values()) == sum(counts.values()), method
    magnitude = pai.prune_at_init("magnitude", model, theta0, counts, "layerwise", small_data, 0)
    w = theta0["hidden.0.weight"].abs()
    assert w[magnitude["hidden.0.weight"]].min() >= w[~magnitude["hidden.0.weight"]].max()
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is left as it was


def test_mechanism_conditions_train_in_a_grid_and_export_their_measures(small_config, small_data, store, tmp_path, data_root):
    conditions = ["ticket", "copy", "sign_kept", "random_signs", "shuffled", "rescaled", "snip", "synflow_global"]
    configs = [small_config(init="kaiming_normal", condition=c) for c in conditions]
    run_grid(configs, store, "cpu", data_root=data_root, workers=1, progress=False)
    runs = {c["condition"]: store.run(c) for c in configs}
    ticket = runs["ticket"]
    for name in ("copy", "sign_kept", "random_signs", "shuffled", "rescaled"):
        assert all(torch.equal(runs[name].tensors(2, "mask")[n], m) for n, m in ticket.tensors(2, "mask").items()), name
    copy_rows, ticket_rows = runs["copy"].metrics(0)["rows"], ticket.metrics(0)["rows"]
    assert copy_rows[0]["val_loss"] == ticket_rows[0]["val_loss"] != copy_rows[-1]["val_loss"]  # same θ0, other order
    assert kept(runs["snip"].tensors(2, "mask")) == kept(ticket.tensors(2, "mask"))
    assert sum(kept(runs["synflow_global"].tensors(2, "mask")).values()) == sum(kept(ticket.tensors(2, "mask")).values())
    assert runs["snip"].metrics(0) == ticket.metrics(0)  # a pruning-at-init run's dense round is its ticket's
    export_grid("mechanisms", configs, store.root, tmp_path, data_root)
    grid = load_grid("mechanisms", tmp_path)
    path = grid.measure("instability")
    assert sorted(path["round"].unique()) == [0, 1, 2] and set(path.run_id) == {run_id(configs[0])}
    assert len(path) == 3 * 11 and path.test_error.between(0, 1).all()
    assert (instability(path[["run_id", "round", "alpha", "test_error"]]).barrier >= -1e-9).all()
    diagnostics = grid.measure("diagnostics")
    assert sorted(diagnostics["round"].unique()) == [1, 2] and set(diagnostics.condition) == {"ticket"}
    theta0 = initialize(small_model(), "kaiming_normal", 1.0, "default", 0, "init")
    before, after = ticket.tensors(0, "mask")["out.weight"], ticket.tensors(1, "mask")["out.weight"]
    row = diagnostics[(diagnostics["round"] == 1) & (diagnostics.tensor == "out.weight")].iloc[0]
    assert row.kept_abs_init == pytest.approx(float(theta0["out.weight"][after].abs().mean()))
    assert row.pruned_abs_init == pytest.approx(float(theta0["out.weight"][before & ~after].abs().mean()))
    assert -1 <= row.rank_correlation <= 1


def test_a_ticket_taken_away_loads_into_torch_prune_and_scores_as_stored(small_config, small_data, store, tmp_path,
                                                                          data_root):
    from torch.nn.utils import prune

    from ticketlib.imp.tickets import apply_ticket, export_ticket
    config = small_config(init="kaiming_normal")
    run_grid([config], store, "cpu", data_root=data_root, workers=1, progress=False)
    path = export_ticket(config, store.root, 2, tmp_path / "ticket.pt", data_root=data_root)
    ticket = torch.load(path, weights_only=False)
    model = apply_ticket(ticket, "trained")
    assert all(prune.is_pruned(model.get_submodule(n.rsplit(".", 1)[0])) for n in ticket["masks"])
    with torch.no_grad():
        model.eval()
        last = store.run(config).metrics(2)["rows"][-1]["test_acc"]
        accuracy = (model(small_data.x_test).argmax(1) == small_data.y_test).float().mean().item()
    assert accuracy == pytest.approx(last, abs=1.5 / len(small_data.y_test))  # the stored final accuracy
    start = apply_ticket(ticket)  # ready to train: θ0 under the mask, which prune keeps in force
    theta0 = initialize(small_model(), "kaiming_normal", 1.0, "default", 0, "init")
    mask = ticket["masks"]["hidden.0.weight"]
    assert torch.equal(start.hidden[0].weight, theta0["hidden.0.weight"] * mask)


def test_a_ticket_comes_from_shipped_results_where_no_store_has_it(tiny_grid, tmp_path, data_root, capsys):
    from ticketlib.cli import main
    from ticketlib.imp.tickets import apply_ticket
    root, configs = tiny_grid
    (tmp_path / "tiny.yaml").write_text("dataset: mnist1d\nmodel: lenet_300_100\ninits: [xavier_normal, lecun_uniform]\n"
                                        "seeds: [0, 1]\nconditions: [ticket, random]\nnum_samples: 1000\nval_size: 80\n"
                                        "iterations: 60\neval_every: 20\nrounds: 3\nhidden: [32, 16]\n")
    argv = ["ticket", str(tmp_path / "tiny.yaml"), "--init", "lecun_uniform", "--seed", "1", "--round", "2",
            "--store", str(tmp_path / "empty"), "--results", str(root / "results"), "--data-root", str(data_root),
            "--out", str(tmp_path / "t.pt")]
    assert main(argv) == 0, capsys.readouterr().err
    ticket = torch.load(tmp_path / "t.pt", weights_only=False)
    shipped = load_grid("tiny", root / "results").last_masks()[("lecun_uniform", 1)]
    assert all(np.array_equal(ticket["masks"][n].numpy(), m) for n, m in shipped.items())
    assert "trained" not in ticket and 0 < ticket["test_accuracy"] <= 1
    model = apply_ticket(ticket)
    assert torch.equal(model.hidden[0].weight == 0, ~ticket["masks"]["hidden.0.weight"] | (ticket["start"]["hidden.0.weight"] == 0))
    assert main([*argv[:7], "1", *argv[8:]]) == 2  # an earlier round: only a store has it
    assert "keeps only the last round's mask (round 2)" in capsys.readouterr().err
    unknown = argv[:3] + ["xavier"] + argv[4:]
    assert main(unknown) == 2  # a name the grid lacks: the line names the grid's choices
    assert "inits: lecun_uniform, xavier_normal; seeds: 0, 1; conditions: random, ticket" in capsys.readouterr().err


def test_area_under_the_log_density_curve_reads_as_a_mean_accuracy():
    from ticketlib.analysis.stats import area_under_log_density
    rows = [dict(init=i, seed=s, round=r, weights_remaining=100 * 0.8 ** r,
                 test_acc=(0.98 - 0.02 * r if i == "falls" else 0.95) + 0.001 * s)
            for i in ("flat", "falls") for s in range(3) for r in range(5)]
    area = area_under_log_density(pd.DataFrame(rows)).set_index("init")
    assert area.loc["flat", "mean"] == pytest.approx(0.951) and area.loc["flat", "seeds"] == 3
    assert area.loc["falls", "mean"] == pytest.approx((0.98 + 0.90) / 2 + 0.001)  # linear in log density: its midpoint
    assert area.loc["falls", "low"] < area.loc["falls", "mean"] < area.loc["falls", "high"]


def test_the_first_stable_rewind_point_is_the_earliest_under_two_percent():
    from ticketlib.analysis.stats import first_stable
    barriers = pd.DataFrame([dict(init=i, round=5, rewind_iteration=k, seed=s, barrier=b)
                             for i, bs in (("late", (0.3, 0.05, 0.01, 0.0)), ("never", (0.3, 0.2, 0.1, 0.05)))
                             for k, b in zip((0, 100, 500, 2000), bs) for s in range(3)])
    stable = first_stable(barriers).set_index("init").first_stable
    assert stable["late"] == 500 and np.isnan(stable["never"])


def test_the_scorecard_measures_each_initializer_from_its_grids():
    from ticketlib.analysis.report import scorecard, scorecard_table
    levels = (100.0, 10.0, 1.0)
    tickets = pd.DataFrame([dict(init=init, seed=s, round=r, weights_remaining=w, condition="ticket",
                                 test_acc=acc[r] + 0.001 * s)
                            for init, acc in (("xavier_normal", (0.97, 0.98, 0.975)), ("normal", (0.93, 0.93, 0.5)))
                            for s in range(3) for r, w in enumerate(levels)])
    controls = pd.concat([tickets.assign(condition=c, test_acc=tickets.test_acc - gap)
                          for c, gap in (("ticket", 0.0), ("reinit", 0.02), ("random", 0.05))], ignore_index=True)
    card = scorecard(tickets, controls).set_index("initializer")
    assert card.loc["xavier_normal", "matching"] == 1.0 and card.loc["normal", "matching"] == 10.0
    assert card.loc["xavier_normal", "ticket_minus_random"] == pytest.approx(5.0)
    assert card.loc["normal", "ticket_minus_reinit"] == pytest.approx(2.0) and card.loc["normal", "seeds"] == 3
    table = scorecard_table(card.reset_index()).set_index("initializer")
    assert "first stable k" not in table and "ticket − best pruning at init, 1.0%" not in table  # not measured
    assert table.loc["xavier_normal", "sparsest matching dense (%)"] == "≤ 1.0"  # the sparsest tested: censored
    assert table.loc["normal", "sparsest matching dense (%)"] == "10.0"
    barriers = pd.DataFrame([dict(init="xavier_normal", seed=s, round=2, rewind_iteration=k, barrier=b)
                             for s in range(3) for k, b in ((0, 0.05), (100, 0.01))])
    card = scorecard(tickets, controls, barriers).set_index("initializer")
    assert card.loc["xavier_normal", "barrier_k0"] == pytest.approx(5.0) and card.loc["xavier_normal", "first_stable_k"] == 100
    assert "first stable k" in scorecard_table(card.reset_index())


def test_the_scorecards_pruning_at_init_gap_is_to_the_best_method_per_layer_or_pooled():
    from ticketlib.analysis.report import scorecard, scorecard_table
    levels = (100.0, 10.0, 1.0)
    tickets = pd.DataFrame([dict(init="normal", seed=s, condition="ticket", round=r, weights_remaining=w,
                                 test_acc=0.90 + 0.001 * s) for s in range(3) for r, w in enumerate(levels)])
    controls = pd.concat([tickets.assign(condition=c) for c in ("ticket", "reinit", "random")], ignore_index=True)
    pai = pd.concat([tickets.assign(condition=c, test_acc=tickets.test_acc + gain)
                     for c, gain in (("ticket", 0.0), ("snip", -0.05))], ignore_index=True)
    pooled = pd.concat([tickets.assign(condition=c, test_acc=tickets.test_acc + gain)
                        for c, gain in (("ticket", 0.0), ("snip_global", -0.02))], ignore_index=True)
    card = scorecard(tickets, controls, pai=pai)
    assert card.pai_best.iloc[0] == "snip" and card.pai_gap.iloc[0] == pytest.approx(5.0)
    card = scorecard(tickets, controls, pai=pai, pai_pooled=pooled)
    assert card.pai_best.iloc[0] == "snip_global" and card.pai_gap.iloc[0] == pytest.approx(2.0)
    cell = scorecard_table(card)["ticket − best pruning at init, 1.0%"].iloc[0]
    assert cell.startswith("2.0 [") and cell.endswith("(snip_global)")  # the method, so its grid, is named


def test_a_scorecard_with_barriers_at_theta0_alone_leaves_out_the_first_stable_rewind_point():
    from ticketlib.analysis.report import scorecard, scorecard_table
    levels = (100.0, 10.0, 1.0)
    tickets = pd.DataFrame([dict(init="xavier_normal", seed=s, condition="ticket", round=r, weights_remaining=w,
                                 test_acc=0.97) for s in range(3) for r, w in enumerate(levels)])
    controls = pd.concat([tickets.assign(condition=c) for c in ("ticket", "reinit", "random")], ignore_index=True)
    barriers = pd.DataFrame([dict(init="xavier_normal", seed=s, round=2, rewind_iteration=0, barrier=0.05 + s / 100)
                             for s in range(3)])
    card = scorecard(tickets, controls, barriers)
    assert card.barrier_k0.iloc[0] == pytest.approx(6.0) and "first_stable_k" not in card
    assert "first stable k" not in scorecard_table(card)
