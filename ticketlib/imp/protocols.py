"""The named IMP protocols (presets of hyperparameters) and the run config they resolve to.

Every behaviour is a hyperparameter with a flag and a YAML key (cli.py gives their help); a
protocol only picks values. A run config is a flat dict of literals: everything that determines
a run's numbers. Its hash (see store.run_id) names the run's folder. `rounds` says how far to go,
not what a round is, so it is left out of the hash: asking for more rounds later extends the
same run.
"""
from ticketlib.imp.conditions import CONDITIONS
from ticketlib.data.datasets import DATASETS, INPUT_NORMS, check_dataset, default_val_size, fingerprint
from ticketlib.errors import TicketError, unknown
from ticketlib.nets.inits import check_bias_init, check_init
from ticketlib.nets.models import MODELS, check_model
from ticketlib.nets.pruning import ROUNDINGS, check_rates
from ticketlib.engine.train import ENGINE

# The behaviours on which the 2020 code, its report and Frankle & Carbin differ, and their choices
CHOICES = {
    "rewind_target": ("init", "pytorch_default"),  # the scheme's θ0, or a PyTorch-default draw made before it
    "optimizer_state": ("reset", "keep"),          # a fresh Adam every round, or one Adam for the whole run
    "input_norm": INPUT_NORMS,                     # training-split mean/std, or pixels in [0, 1]
    "prune_rounding": ROUNDINGS,                   # prune counts rounded half up, or down (int())
    "data_order": ("per_round", "continuous"),     # every round replays epochs 0..n, or new epochs all run long
    "test_at": ("every", "early_stop"),            # test accuracy at every evaluation, or at early stop and end only
    "precision": ("fp32", "bf16"),                 # matmuls in fp32, or in bf16 (autocast; weights and Adam fp32)
    "lr_rule": ("constant", "relative"),           # one lr, or per layer lr × RMS(θ0) / Xavier normal's σ
}
# Hyperparameters added after engine 5: a run's config holds one only when it is set away from its
# value here, so every earlier run keeps its id (its folder in the store and the shipped results).
LATER_DEFAULTS = {"data_seed": None, "lr_rule": "constant"}
ALTERNATIVES = (("iterations", "epochs"), ("eval_every", "eval_every_epochs"))  # a budget, a cadence: one of each
EVAL_SPLITS = ("train", "val", "test")  # train: accuracy on the whole training split (train_acc)

FRANKLE2019 = dict(  # Frankle & Carbin 2019: full budget each round, early stop = min validation loss
    lr=1.2e-3, batch_size=60,
    iterations=50_000, epochs=None,   # per round
    eval_every=100,                   # iterations between evaluations (also one at the round's start)
    eval_every_epochs=None,           # or: epochs between evaluations (at epoch ends)
    eval_splits=["val", "test"],      # evaluated at each point
    test_at="early_stop",             # test only at the early-stop row and the last (the numbers reported), or every
    prune_scope="layerwise", prune_rates={"fc": 0.2, "conv": 0.1, "output": 0.1},
    prune_biases=False, prune_rounding="half_up", rewind_iteration=0, rounds=20,
    rewind_target="init", optimizer_state="reset", data_order="per_round",
    val_size=None,                    # None: 5K for MNIST/CIFAR, a tenth of train otherwise
    input_norm="standardize", activation="relu", bias_init="default", scale=1.0,
    precision="fp32",                 # or bf16: matmuls in bf16 (about 1.7x on this CPU's layer 1), weights and Adam fp32
)
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
    unknown_keys = set(overrides) - set(PROTOCOLS[protocol]) - {"hidden", "num_samples", *LATER_DEFAULTS}
    if unknown_keys:
        raise TicketError(f"unknown hyperparameter(s) {', '.join(sorted(unknown_keys))}")
    for one, other in ALTERNATIVES:
        if one in overrides and other in overrides:
            raise TicketError(f"give {one} or {other}, not both")
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

    check_dataset(dataset)
    check_model(model, hp["activation"])
    check_init(init)
    check_bias_init(hp["bias_init"])
    check_rates(hp["prune_scope"], hp["prune_rates"])
    for key, choices in CHOICES.items():
        if hp[key] not in choices:
            raise unknown(key, hp[key], choices)
    splits = hp["eval_splits"].split(",") if isinstance(hp["eval_splits"], str) else list(hp["eval_splits"])
    bad = [split for split in splits if split not in EVAL_SPLITS]
    if bad or not splits:
        raise TicketError(f"eval_splits: {'unknown ' + ', '.join(map(str, bad)) if bad else 'none given'}; "
                          f"valid: {', '.join(EVAL_SPLITS)}")
    hp["eval_splits"] = [split for split in EVAL_SPLITS if split in splits]  # one order: equal sets hash alike
    hp["prune_rates"] = {k: float(v) for k, v in hp["prune_rates"].items()}
    for key in ("batch_size", "rounds"):
        _positive_int(key, hp[key])
    for key in ("iterations", "epochs", "eval_every", "eval_every_epochs"):
        _positive_int(key, hp[key], allow_none=True)
    for key, value in (("seed", seed), ("data_seed", hp["data_seed"])):
        if key == "seed" or value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TicketError(f"{key} must be a non-negative integer; got {value!r}")
    if hp["data_seed"] == seed:
        hp["data_seed"] = None  # the same run as leaving it out
    for key in ("lr", "scale"):
        hp[key] = _positive_float(key, hp[key])  # float: 1 and 1.0 must hash alike
    if not isinstance(hp["rewind_iteration"], int) or hp["rewind_iteration"] < 0:
        raise TicketError(f"rewind_iteration must be a non-negative integer; got {hp['rewind_iteration']!r}")
    if hp["iterations"] and hp["rewind_iteration"] >= hp["iterations"]:
        raise TicketError("rewind_iteration must be smaller than the iterations per round")
    if hp["rewind_iteration"] and hp["rewind_target"] != "init":
        raise TicketError("late rewinding (rewind_iteration > 0) rewinds to the ticket's own weights: "
                          "it needs rewind_target init")
    hidden = tuple(hp.pop("hidden", None) or MODELS[model].hidden)
    for width in hidden:
        _positive_int("hidden width", width)

    num_samples = hp.pop("num_samples", None)
    generated = [name for name, spec in DATASETS.items() if spec.default_samples]
    if dataset in generated:
        num_samples = num_samples or DATASETS[dataset].default_samples
        _positive_int("num_samples", num_samples)
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
