"""The two named IMP protocols and the run config they resolve to.

A run config is a flat dict of literals: everything that determines a run's numbers. Its hash
(see store.run_id) names the run's folder. `rounds` says how far to go, not what a round is, so
it is left out of the hash: asking for more rounds later extends the same run.
"""
from .datasets import MNIST1D_DEFAULT_SAMPLES, check_dataset, default_val_size, fingerprint
from .errors import TicketError, unknown
from .inits import check_bias_init, check_init
from .models import DEFAULT_HIDDEN, check_model
from .pruning import check_rates
from .train import ENGINE

CONDITIONS = ("ticket", "reinit", "random")  # IMP ticket; same mask, fresh init; random mask, same init
UNHASHED = ("rounds",)

PROTOCOLS = {
    # Frankle & Carbin 2019: full budget each round, early stop = min validation loss.
    "frankle2019": dict(
        lr=1.2e-3, batch_size=60,
        iterations=50_000, epochs=None,   # per round
        eval_every=100,                   # iterations between validation/test evaluations
        prune_scope="layerwise", prune_rates={"fc": 0.2, "conv": 0.1, "output": 0.1},
        prune_biases=False, rewind_iteration=0, rounds=20,
        val_size=None,                    # None: 5K for MNIST/CIFAR, a tenth of train otherwise
        activation="relu", bias_init="default", scale=1.0,
    ),
    # The 2020 study: 5 epochs a round, 20% of every tensor, accuracy right before each pruning.
    "seed2020": dict(
        lr=1.2e-3, batch_size=60,
        iterations=None, epochs=5,
        eval_every=None,                  # evaluate only at the end of each round
        prune_scope="layerwise", prune_rates={"fc": 0.2, "conv": 0.2, "output": 0.2},
        prune_biases=True, rewind_iteration=0, rounds=20,
        val_size=0,                       # no validation split; accuracy on the test set
        activation="leaky_relu", bias_init="default", scale=1.0,
    ),
}
MODEL_DEFAULTS = {  # F&C's per-network settings for CIFAR-10
    "frankle2019": {
        "conv2": dict(lr=2e-4, iterations=20_000),
        "conv4": dict(lr=3e-4, iterations=25_000),
        "conv6": dict(lr=3e-4, iterations=30_000, prune_rates={"fc": 0.2, "conv": 0.15, "output": 0.1}),
    },
    "seed2020": {"conv6": dict(lr=3e-4)},
}


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TicketError(f"{name} must be a positive integer; got {value!r}")


def _positive_float(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise TicketError(f"{name} must be a positive number; got {value!r}")
    return float(value)


def make_run(dataset: str, model: str, init: str, seed: int, protocol: str = "frankle2019",
             condition: str = "ticket", **overrides) -> dict:
    """Resolve a full run config from a protocol's defaults; overrides of None are ignored."""
    if protocol not in PROTOCOLS:
        raise unknown("protocol", protocol, PROTOCOLS)
    if condition not in CONDITIONS:
        raise unknown("condition", condition, CONDITIONS)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown_keys = set(overrides) - set(PROTOCOLS[protocol]) - {"hidden", "num_samples"}
    if unknown_keys:
        raise TicketError(f"unknown hyperparameter(s) {', '.join(sorted(unknown_keys))}")
    if "iterations" in overrides and "epochs" in overrides:
        raise TicketError("give a budget in iterations or in epochs, not both")
    hp = {**PROTOCOLS[protocol], **MODEL_DEFAULTS[protocol].get(model, {})}
    if overrides.get("prune_scope", hp["prune_scope"]) != hp["prune_scope"]:
        hp["prune_rates"] = {"global": 0.2}  # a different scope starts from its own default
    overrides["prune_rates"] = {**hp["prune_rates"], **overrides.get("prune_rates", {})}
    if "iterations" in overrides:
        hp["epochs"] = None
    if "epochs" in overrides:
        hp["iterations"] = None
    hp.update(overrides)

    check_dataset(dataset)
    check_model(model, hp["activation"])
    check_init(init)
    check_bias_init(hp["bias_init"])
    check_rates(hp["prune_scope"], hp["prune_rates"])
    hp["prune_rates"] = {k: float(v) for k, v in hp["prune_rates"].items()}
    for key in ("batch_size", "rounds"):
        _positive_int(key, hp[key])
    for key in ("iterations", "epochs", "eval_every"):
        _positive_int(key, hp[key], allow_none=True)
    if not isinstance(seed, int) or seed < 0:
        raise TicketError(f"seed must be a non-negative integer; got {seed!r}")
    for key in ("lr", "scale"):
        hp[key] = _positive_float(key, hp[key])  # float: 1 and 1.0 must hash alike
    if not isinstance(hp["rewind_iteration"], int) or hp["rewind_iteration"] < 0:
        raise TicketError(f"rewind_iteration must be a non-negative integer; got {hp['rewind_iteration']!r}")
    if hp["iterations"] and hp["rewind_iteration"] >= hp["iterations"]:
        raise TicketError("rewind_iteration must be smaller than the iterations per round")
    hidden = tuple(hp.pop("hidden", None) or DEFAULT_HIDDEN[model])
    for width in hidden:
        _positive_int("hidden width", width)

    num_samples = hp.pop("num_samples", None)
    if dataset == "mnist1d":
        num_samples = num_samples or MNIST1D_DEFAULT_SAMPLES
        _positive_int("num_samples", num_samples)
    elif num_samples is not None:
        raise TicketError("num_samples applies to mnist1d only")
    if hp["val_size"] is None:
        hp["val_size"] = default_val_size(dataset, num_samples)
    if hp["val_size"] == 0 and hp["eval_every"] is not None:
        raise TicketError("early stopping (eval_every) needs a validation split: set val_size > 0")

    return dict(dataset=dataset, data_fingerprint=fingerprint(dataset), num_samples=num_samples,
                model=model, hidden=list(hidden), init=init, seed=seed, protocol=protocol,
                condition=condition, engine=ENGINE, **hp)
