import json
import shutil

import pytest
import torch

import ticketlib.imp.rounds as imp
from ticketlib.engine.train import Job, train
from ticketlib.imp.grid import run_grid
from ticketlib.nets.inits import initialize
from ticketlib.nets.models import build_model
from ticketlib.nets.pruning import kept
from ticketlib.store.runs import Store


@pytest.fixture
def spy(monkeypatch):
    """Record every stack's trainings: one list per stack of (state, mask, optimizer, start, order_offset) per ticket."""
    stacks = []

    def recording_train(model, jobs, data, config, start, stop, device="cpu", order_offset=0, on_steps=None):
        stacks.append([dict(state={k: v.clone() for k, v in job.state.items()},
                            mask={k: v.clone() for k, v in job.mask.items()}, optimizer=job.optimizer,
                            start=start, order_offset=order_offset) for job in jobs])
        return train(model, jobs, data, config, start, stop, device, order_offset, on_steps or (lambda steps: None))

    monkeypatch.setattr(imp, "train", recording_train)
    return stacks


def initial_state(config, purpose="init"):
    model = build_model("lenet_300_100", (40,), 10, config["hidden"], config["activation"])
    return initialize(model, config["init"], config["scale"], config["bias_init"], config["seed"], purpose)


@pytest.mark.slow  # trains several rounds end to end
def test_ticket_rounds_rewind_to_exact_initial_weights(small_config, small_data, store, spy):
    config = small_config()
    assert imp.run_cohort([config], store, small_data) == 3
    theta0 = initial_state(config)
    run = store.run(config)
    assert [len(stack) for stack in spy] == [1, 1, 1]
    for r, (call,) in enumerate(spy):
        assert call["start"] == 0
        assert all(torch.equal(call["state"][k], theta0[k]) for k in theta0)
        assert all(torch.equal(call["mask"][k], m) for k, m in run.tensors(r, "mask").items())
    # round r+1's mask prunes round r's trained weights; the trained weights are zero where pruned
    weights, mask = run.tensors(0, "weights"), run.tensors(1, "mask")
    assert all((weights[n][~m].abs().max() <= weights[n][m].abs().min()) for n, m in mask.items())
    assert all((run.tensors(1, "weights")[n][~m] == 0).all() for n, m in mask.items())


def test_controls_differ_from_the_ticket_only_as_intended(small_config, small_data, store, spy):
    ticket, reinit, random = (small_config(condition=c) for c in ("ticket", "reinit", "random"))
    assert imp.run_cohort([reinit, random], store, small_data) == 9  # the ticket they need comes along
    # one stack a round: ticket, reinit, random; random's dense round 0 is the ticket's, copied
    assert [len(stack) for stack in spy] == [2, 3, 3]
    theta0, theta0_prime = initial_state(ticket), initial_state(ticket, "reinit")
    random_run, ticket_run = store.run(random), store.run(ticket)
    assert random_run.metrics(0) == ticket_run.metrics(0)
    assert all(torch.equal(v, ticket_run.tensors(0, "weights")[k]) for k, v in random_run.tensors(0, "weights").items())
    for r, stack in enumerate(spy):
        t, re, ra = stack if r else (*stack, None)
        # reinit: the ticket's mask, a fresh draw of the same scheme
        assert all(torch.equal(re["mask"][k], t["mask"][k]) for k in t["mask"])
        assert all(torch.equal(re["state"][k], theta0_prime[k]) for k in theta0)
        assert not torch.equal(re["state"]["hidden.0.weight"], theta0["hidden.0.weight"])
        assert re["state"]["hidden.0.weight"].std().item() == pytest.approx(theta0["hidden.0.weight"].std().item(), rel=0.1)
        if ra is None:
            continue
        # random: the ticket's init and per-tensor counts, another mask
        assert all(torch.equal(ra["state"][k], theta0[k]) for k in theta0)
        assert kept(ra["mask"]) == kept(t["mask"])
        assert not all(torch.equal(ra["mask"][k], t["mask"][k]) for k in t["mask"])


@pytest.mark.slow  # trains several rounds end to end
def test_late_rewinding_restores_iteration_k(small_config, small_data, store, spy):
    config = small_config(rewind_iteration=20)
    imp.run_cohort([config], store, small_data)
    run = store.run(config)
    rewind = run.tensors(0, "rewind")
    model = build_model("lenet_300_100", (40,), 10, config["hidden"])
    full = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters() if "weight" in n}
    (first_20,) = train(model, [Job(initial_state(config), full, config["seed"])], small_data, config, 0, 20)
    assert all(torch.equal(first_20.weights[k], rewind[k]) for k in rewind)
    assert [call["start"] for (call,) in spy] == [0, 20, 20]
    assert all(torch.equal(spy[r][0]["state"][k], rewind[k]) for r in (1, 2) for k in rewind)
    assert run.metrics(1)["rows"][0]["iteration"] == 20


def test_controls_under_late_rewinding(small_config, small_data, store, spy):
    """The random control rewinds to the ticket's iteration k (its own mask); the reinit control
    has no iteration k of its own draw to go back to, so it trains θ0' from iteration 0."""
    configs = [small_config(rewind_iteration=20, rounds=2, condition=c) for c in ("ticket", "reinit", "random")]
    imp.run_cohort(configs, store, small_data)
    rewind = store.run(configs[0]).tensors(0, "rewind")
    theta0_prime = initial_state(configs[1], "reinit")
    round_1 = [call for stack in spy[-2:] for call in stack]  # round 1: stacks by start iteration
    starts = sorted(call["start"] for call in round_1)
    assert starts == [0, 20, 20]
    reinit = next(call for call in round_1 if call["start"] == 0)
    assert all(torch.equal(reinit["state"][k], theta0_prime[k]) for k in theta0_prime)
    for call in (call for call in round_1 if call["start"] == 20):  # ticket and random
        assert all(torch.equal(call["state"][k], rewind[k]) for k in rewind)


@pytest.mark.slow  # trains several rounds end to end
def test_same_config_twice_gives_identical_results(small_config, small_data, tmp_path):
    config = small_config(init="kaiming_uniform", seed=5, condition="random")
    runs = []
    for name in ("a", "b"):
        store = Store(tmp_path / name)
        imp.run_cohort([config], store, small_data)
        runs.append(store.run(config))
    for r in range(3):
        assert runs[0].metrics(r) == runs[1].metrics(r)
        for name in ("mask", "weights"):
            a, b = runs[0].tensors(r, name), runs[1].tensors(r, name)
            assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # trains several rounds end to end
def test_resume_recomputes_only_missing_rounds_identically(small_config, small_data, store):
    config = small_config(rounds=2)
    assert imp.run_cohort([config], store, small_data) == 2
    run = store.run(config)
    before = run.metrics(1)
    shutil.rmtree(run.round_path(1))
    assert imp.run_cohort([config], store, small_data) == 1
    assert run.metrics(1) == before
    # more rounds later extend the same run
    assert imp.run_cohort([{**config, "rounds": 3}], store, small_data) == 1
    assert store.run({**config, "rounds": 3}).path == run.path and run.rounds() == [0, 1, 2]


def test_finished_grid_trains_nothing(small_config, small_data, store, monkeypatch):
    configs = [small_config(seed=s) for s in (0, 1)]
    assert run_grid(configs, store, "cpu", workers=1, progress=False)["trained"] == 6

    def no_training(*args, **kwargs):
        raise AssertionError("a finished round was trained again")
    monkeypatch.setattr(imp, "train", no_training)
    assert run_grid(configs, store, "cpu", workers=1, progress=False)["trained"] == 0


def test_diverging_run_is_recorded_and_grid_goes_on(small_config, small_data, store):
    blowup = small_config(init="normal", scale=1e30, condition="reinit")
    healthy = small_config(seed=1)
    counts = run_grid([blowup, healthy], store, "cpu", workers=1, progress=False)
    assert counts["diverged"] == 1  # the reinit; the ticket it needed diverged too
    for config in (blowup, {**blowup, "condition": "ticket"}):
        run = store.run(config)
        assert run.rounds() == [0] and run.metrics(0)["diverged"] is True
        assert not any(row["is_early_stop"] for row in run.metrics(0)["rows"])
    assert store.run(healthy).rounds() == [0, 1, 2]
    metrics = json.loads((store.run(blowup).round_path(0) / "metrics.json").read_text())
    assert metrics["rows"][-1]["train_loss"] is None  # NaN stored as null


def test_global_pruning_through_a_cohort(small_config, small_data, store):
    """prune_scope global: each round removes 20% of the pooled kept weights, smallest first across
    all layers, from the previous round's trained weights; controls keep the ticket's per-tensor counts."""
    ticket, random = (small_config(condition=c, rounds=3, prune_scope="global") for c in ("ticket", "random"))
    imp.run_cohort([ticket, random], store, small_data)
    run = store.run(ticket)
    for r in (1, 2):
        before, mask, weights = run.tensors(r - 1, "mask"), run.tensors(r, "mask"), run.tensors(r - 1, "weights")
        alive = sum(kept(before).values())
        assert sum(kept(mask).values()) == alive - int(0.2 * alive + 0.5)
        dropped = max(weights[n][before[n] & ~m].abs().max() for n, m in mask.items() if (before[n] & ~m).any())
        assert all(weights[n][m].abs().min() >= dropped for n, m in mask.items())
        densities = [kept(mask)[n] / m.numel() for n, m in mask.items()]
        assert max(densities) - min(densities) > 0.05  # pooled: layers end at different densities
        assert kept(store.run(random).tensors(r, "mask")) == kept(mask)
