"""The named IMP protocols (presets of hyperparameters) and the run config they resolve to.

Every hyperparameter is a typed field of config.Hyperparameters (its flag, YAML key, default,
valid values and help); a protocol only picks values. A run config is a flat dict of literals:
everything that determines a run's numbers. Its hash (config.run_id) names the run's folder.
`rounds` says how far to go, not what a round is, so it is left out of the hash: asking for more
rounds later extends the same run.
"""
from ticketlib.config import (
    ALTERNATIVES,
    ENGINE,
    EVAL_SPLITS,
    FIELDS,
    LATER_DEFAULTS,
    frankle2019,
    read,
)
from ticketlib.data.datasets import (
    DATASETS,
    check_dataset,
    default_val_size,
    fingerprint,
)
from ticketlib.errors import TicketError, unknown
from ticketlib.imp.conditions import CONDITIONS
from ticketlib.nets.inits import check_init
from ticketlib.nets.models import MODELS, check_model
from ticketlib.nets.pruning import check_rates

FRANKLE2019 = frankle2019()  # Frankle & Carbin 2019: full budget each round, early stop = min validation loss
SEED2020_AS_RUN = dict(  # the 2020 code as it ran (PROTOCOLS.md): 100 epochs, pruned every 5
    FRANKLE2019,
    iterations=None, epochs=5,        # a round is the 5 epochs between prunings
    eval_every=None, eval_every_epochs=1, eval_splits=["train", "test"], test_at="every",  # both at every epoch's end
    prune_rates={"fc": 0.2, "conv": 0.2, "output": 0.2}, prune_biases=True, prune_rounding="floor",
    rewind_target="pytorch_default",  # the bug: every reset restored PyTorch's default draw
    optimizer_state="keep", data_order="continuous",
    val_size=0, input_norm="none", activation="leaky_relu",
)
PROTOCOLS: dict[str, dict] = {}
MODEL_DEFAULTS: dict[str, dict] = {}  # protocol → model → the hyperparameters it sets for that model


def register_protocol(name: str, hyperparameters: dict, per_model: dict | None = None) -> None:
    """A protocol gives every hyperparameter a value (start from a copy of FRANKLE2019), and may set
    some per model."""
    missing = sorted(set(FRANKLE2019) - set(hyperparameters))
    extra = sorted(set(hyperparameters) - set(FRANKLE2019))
    if missing or extra:
        raise TicketError(f"protocol {name!r}: {'lacks ' + ', '.join(missing) if missing else ''}"
                          f"{'; ' if missing and extra else ''}{'unknown ' + ', '.join(extra) if extra else ''}")
    PROTOCOLS[name], MODEL_DEFAULTS[name] = hyperparameters, per_model or {}


register_protocol("frankle2019", FRANKLE2019, per_model={  # F&C's per-network settings for CIFAR-10
    "conv2": dict(lr=2e-4, iterations=20_000),
    "conv4": dict(lr=3e-4, iterations=25_000),
    "conv6": dict(lr=3e-4, iterations=30_000, prune_rates={"fc": 0.2, "conv": 0.15, "output": 0.1}),
})
register_protocol("seed2020_as_run", SEED2020_AS_RUN, per_model={"conv6": dict(lr=3e-4)})  # the 2020 Conv-6's
register_protocol("seed2020", dict(SEED2020_AS_RUN, rewind_target="init"),  # the same with the bug fixed
                  per_model={"conv6": dict(lr=3e-4)})


def make_run(dataset: str, model: str, init: str, seed: int, protocol: str = "frankle2019",
             condition: str = "ticket", **overrides) -> dict:
    """Resolve a full run config from a protocol's defaults; overrides of None are ignored. Every
    value is checked against its field in config.py; names against the registries."""
    if protocol not in PROTOCOLS:
        raise unknown("protocol", protocol, PROTOCOLS)
    if condition not in CONDITIONS:
        raise unknown("condition", condition, CONDITIONS)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown_keys = set(overrides) - set(PROTOCOLS[protocol]) - {"hidden", "num_samples", *LATER_DEFAULTS}
    if unknown_keys:
        raise TicketError(f"unknown hyperparameter(s) {', '.join(sorted(unknown_keys))}")
    for one, other in ALTERNATIVES:
        if one in overrides and other in overrides:
            raise TicketError(f"give {one} or {other}, not both")
    overrides = {k: read(k, v) for k, v in overrides.items()}
    hp = {**LATER_DEFAULTS, **PROTOCOLS[protocol], **MODEL_DEFAULTS[protocol].get(model, {})}
    if overrides.get("prune_scope", hp["prune_scope"]) != hp["prune_scope"]:
        hp["prune_rates"] = {"global": 0.2}  # a different scope starts from its own default
    overrides["prune_rates"] = {**hp["prune_rates"], **overrides.get("prune_rates", {})}
    for one, other in ALTERNATIVES:  # giving one replaces the protocol's other
        if one in overrides:
            hp[other] = None
        if other in overrides:
            hp[one] = None
    hp.update(overrides)
    for key in [k for k in hp if k in FIELDS and hp[k] is not None and k not in overrides]:
        hp[key] = read(key, hp[key], f"protocol {protocol}: ")  # a registered protocol's values, checked alike

    check_dataset(dataset)
    check_model(model, hp["activation"])
    check_init(init)
    check_rates(hp["prune_scope"], hp["prune_rates"])
    if not hp["eval_splits"]:
        raise TicketError(f"eval_splits: none given; valid: {', '.join(EVAL_SPLITS)}")
    hp["eval_splits"] = [split for split in EVAL_SPLITS if split in hp["eval_splits"]]  # one order: equal sets hash alike
    if hp["rounds"] is None or hp["batch_size"] is None:
        raise TicketError("rounds and batch_size must be positive integers")
    seed = read("seeds", [seed])[0] if not isinstance(seed, bool) and isinstance(seed, int) and seed >= 0 else None
    if seed is None:
        raise TicketError(f"seed must be a non-negative integer; got {overrides.get('seed', seed)!r}")
    if hp["data_seed"] == seed:
        hp["data_seed"] = None  # the same run as leaving it out
    if hp["iterations"] and hp["rewind_iteration"] >= hp["iterations"]:
        raise TicketError(f"rewind_iteration must be smaller than the iterations per round ({hp['iterations']}); "
                          f"got {hp['rewind_iteration']}")
    if hp["rewind_iteration"] and hp["rewind_target"] != "init":
        raise TicketError("late rewinding (rewind_iteration > 0) rewinds to the ticket's own weights: "
                          "it needs rewind_target init")
    hidden = tuple(hp.pop("hidden", None) or MODELS[model].hidden)

    num_samples = hp.pop("num_samples", None)
    generated = [name for name, spec in DATASETS.items() if spec.default_samples]
    if dataset in generated:
        num_samples = num_samples or DATASETS[dataset].default_samples
    elif num_samples is not None:
        raise TicketError(f"num_samples applies to generated datasets only ({', '.join(generated)})")
    if hp["val_size"] is None:
        hp["val_size"] = default_val_size(dataset, num_samples)
    if hp["val_size"] == 0 and "val" in hp["eval_splits"]:
        raise TicketError("eval_splits includes val but there is no validation split (val_size 0): "
                          "set val_size > 0 or leave val out of eval_splits")

    for key, default in LATER_DEFAULTS.items():
        if hp[key] == default:
            del hp[key]
    return dict(dataset=dataset, data_fingerprint=fingerprint(dataset), num_samples=num_samples,
                model=model, hidden=list(hidden), init=init, seed=seed, protocol=protocol,
                condition=condition, engine=ENGINE, **hp)


def data_seed(config: dict) -> int:
    """The seed of a run's data order: its own `data_seed`, or its seed (which also draws θ0)."""
    return config.get("data_seed", config["seed"])


def lr_rule(config: dict) -> str:
    return config.get("lr_rule", LATER_DEFAULTS["lr_rule"])
