"""Measures made from a run's stored weights when its grid is exported (they need the tensors, so
they are made here, once, and analysis reads their tables without torch).

Instability (Frankle et al. 2020, "Linear mode connectivity and the lottery ticket hypothesis"):
a ticket and its `copy` (the same mask and start, another data order) train round r to weights
θa and θb; test error is evaluated at `POINTS` evenly spaced points of the line (1 − α)·θa + α·θb
(masks kept: both are zero where pruned). The barrier, the largest error on the path minus the
mean of its ends (stats.instability), is near 0 when the two copies reach one linearly connected
minimum: training from that start is stable to SGD noise.

No-retrain diagnostics, per ticket, round r ≥ 1 and pruned tensor: among the weights alive in
round r − 1, the mean |θ0| of those round r keeps and of those it prunes, and the rank correlation
(Spearman) of |θ0| with their trained magnitudes |θ_{r−1}| (which the pruning ranks by): does IMP
keep the weights that were large at initialization?
"""
import numpy as np
import torch
from scipy import stats as scipy_stats

from ticketlib.engine.train import Job, Stack, evaluate
from ticketlib.nets.inits import initialize
from ticketlib.nets.models import build_model

POINTS = 11  # α = 0, 0.1, ..., 1
INSTABILITY_COLUMNS = ["run_id", "round", "alpha", "test_error"]
DIAGNOSTIC_COLUMNS = ["run_id", "round", "tensor", "kept_abs_init", "pruned_abs_init", "rank_correlation"]


def path_errors(model, weights_a: dict, weights_b: dict, mask: dict, data, points: int = POINTS) -> list[float]:
    """Test error at `points` evenly spaced points from weights_a (α = 0) to weights_b (α = 1)."""
    alphas = np.linspace(0.0, 1.0, points)
    jobs = [Job({n: (1 - a) * weights_a[n] + a * weights_b[n] for n in weights_a}, mask, 0) for a in alphas]
    _, accuracy = evaluate(Stack(model, jobs, "cpu"), data.x_test, data.y_test)
    return [1.0 - acc for acc in accuracy]


def instability_rows(ticket, copy, rounds: int, data) -> list[dict]:
    """The path's test errors for every round both the ticket run and its copy have."""
    config = ticket.config
    model = build_model(config["model"], data.input_shape, data.num_classes, config["hidden"], config["activation"])
    rows = []
    for r in [r for r in ticket.rounds() if r < rounds and copy.has_round(r)]:
        if ticket.metrics(r)["diverged"] or copy.metrics(r)["diverged"]:
            continue
        errors = path_errors(model, ticket.tensors(r, "weights"), copy.tensors(r, "weights"), ticket.tensors(r, "mask"), data)
        rows += [dict(run_id=ticket.path.name, round=r, alpha=float(a), test_error=e)
                 for a, e in zip(np.linspace(0.0, 1.0, len(errors)), errors)]
    return rows


def diagnostic_rows(ticket, rounds: int, data) -> list[dict]:
    """|θ0| of kept against pruned weights, and its rank correlation with the trained magnitudes, per round and tensor."""
    config = ticket.config
    model = build_model(config["model"], data.input_shape, data.num_classes, config["hidden"], config["activation"])
    theta0 = initialize(model, config["init"], config["scale"], config["bias_init"], config["seed"], "init")
    rows = []
    done = [r for r in ticket.rounds() if r < rounds]
    for r in [r for r in done if r >= 1 and r - 1 in done]:
        before, after, trained = ticket.tensors(r - 1, "mask"), ticket.tensors(r, "mask"), ticket.tensors(r - 1, "weights")
        for name in after:
            alive = before[name]
            init, final, keeps = theta0[name][alive].abs(), trained[name][alive].abs(), after[name][alive]
            pruned = init[~keeps]
            varied = init.numel() > 1 and bool(init.max() > init.min()) and bool(final.max() > final.min())
            rows.append(dict(run_id=ticket.path.name, round=r, tensor=name,
                             kept_abs_init=float(init[keeps].mean()) if keeps.any() else np.nan,
                             pruned_abs_init=float(pruned.mean()) if len(pruned) else np.nan,
                             rank_correlation=float(scipy_stats.spearmanr(init.numpy(), final.numpy()).statistic)
                             if varied else np.nan))
    return rows


def one_thread(function, *args):
    """Evaluate as training workers do, on one thread: the float sums are the same each export."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function(*args)
    finally:
        torch.set_num_threads(threads)
