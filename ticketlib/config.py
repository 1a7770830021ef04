"""The run configuration, typed: every setting once, with its type, default, valid choices and help.

    Hyperparameters  what a run trains with (defaults: Frankle & Carbin's protocol, frankle2019)
    Axes             what a grid sweeps: datasets × models × inits × scales × seeds × conditions
    RunOptions       where and how a grid runs (store, device, workers, ...); not part of any run

The CLI's flags (`add_flags`), the validation of YAML grid files (`read_grid_file`) and the
README's table (`markdown_table`) are made from these fields. A run config, the dict whose hash
names a run's folder (`run_id`), holds the resolved hyperparameters plus the run's dataset, model,
init, seed, condition and the engine version; imp/protocols.py resolves it and checks names
against the registries. This module imports no torch and nothing of the engine.
"""
import hashlib
import json
import math
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from ticketlib.errors import TicketError

ENGINE = 5  # bump when a change alters numbers or the config, so old and new runs never share a folder
UNHASHED = ("rounds",)  # how far a run goes is not part of its identity: a longer grid extends it

EVAL_SPLITS = ("train", "val", "test")  # train: accuracy on the whole training split (train_acc)
INPUT_NORMS = ("standardize", "none")
ROUNDINGS = ("half_up", "floor")
SCOPES = ("layerwise", "global")
ACTIVATIONS = ("relu", "leaky_relu")
BIAS_INITS = ("default", "zeros")
ALTERNATIVES = (("iterations", "epochs"), ("eval_every", "eval_every_epochs"))  # a budget, a cadence: one of each


def setting(default, help: str, kind: str, choices: tuple = (), later: bool = False):
    """A field: `kind` says how it is read and checked (int, count, index, number, text, flag,
    texts, counts, numbers, rates); `later`: added after engine 5, so a run config holds it only
    when set away from the default (every earlier run keeps its id)."""
    factory = dict(default_factory=lambda: dict(default)) if isinstance(default, dict) else dict(default=default)
    return field(**factory, metadata=dict(help=help, kind=kind, choices=choices, later=later))


@dataclass(frozen=True)
class Hyperparameters:
    """Everything that decides a run's numbers besides its dataset, model, init, seed and condition."""
    lr: float = setting(1.2e-3, "Adam learning rate", "number")
    lr_rule: str = setting("constant", "constant (one lr) or relative (each layer's lr × RMS(θ0) / Xavier normal's σ: "
                           "Xavier's step relative to the weights)", "text", ("constant", "relative"), later=True)
    batch_size: int = setting(60, "minibatch size", "count")
    iterations: int | None = setting(50_000, "training iterations per round (or give epochs)", "count")
    epochs: int | None = setting(None, "training epochs per round, instead of iterations", "count")
    eval_every: int | None = setting(100, "iterations between evaluations, counted from a round's start (F&C: 100)", "count")
    eval_every_epochs: int | None = setting(None, "epochs between evaluations, at epoch ends, instead of eval_every "
                                            "(the 2020 code: 1)", "count")
    eval_splits: tuple = setting(("val", "test"), "splits evaluated at each point (train: accuracy on the whole "
                                 "training split)", "texts", EVAL_SPLITS)
    test_at: str = setting("early_stop", "every (test accuracy at every evaluation) or early_stop (at each round's "
                           "early-stop and last rows only: the same numbers there)", "text", ("every", "early_stop"))
    prune_scope: str = setting("layerwise", "layerwise (each tensor at its kind's rate) or global (pooled)", "text", SCOPES)
    prune_rates: dict = setting({"fc": 0.2, "conv": 0.1, "output": 0.1},
                                "fraction of kept weights pruned a round, per layer kind (global=0.2 for global)", "rates")
    prune_biases: bool = setting(False, "prune bias vectors too (the seed2020 protocols do)", "flag")
    prune_rounding: str = setting("half_up", "half_up or floor (the 2020 code's int()) for the count pruned per tensor",
                                  "text", ROUNDINGS)
    rewind_iteration: int = setting(0, "rewind to this iteration of the dense training instead of θ0 (late rewinding)",
                                    "index")
    rounds: int = setting(20, "pruning rounds, round 0 being dense (not part of a run's identity)", "count")
    rewind_target: str = setting("init", "init (the scheme's θ0, F&C) or pytorch_default (a PyTorch-default draw: "
                                 "the 2020 code's bug)", "text", ("init", "pytorch_default"))
    optimizer_state: str = setting("reset", "reset (a fresh Adam every round) or keep (one Adam for the whole run, "
                                   "as the 2020 code)", "text", ("reset", "keep"))
    data_order: str = setting("per_round", "per_round (each round replays epochs 0..n) or continuous (new shuffles "
                              "over the whole run, as the 2020 code)", "text", ("per_round", "continuous"))
    val_size: int | None = setting(None, "examples held out of the training set for validation (default: 5K for "
                                   "MNIST/CIFAR, a tenth of train otherwise)", "index")
    input_norm: str = setting("standardize", "standardize (the training split's mean/std) or none (pixels in [0, 1], "
                              "as the 2020 code)", "text", INPUT_NORMS)
    activation: str = setting("relu", "relu or leaky_relu (slope 0.05)", "text", ACTIVATIONS)
    bias_init: str = setting("default", "default (PyTorch's U(±1/√fan_in)) or zeros", "text", BIAS_INITS)
    scale: float = setting(1.0, "multiplier of the init's weights (a grid sweeps it with scales)", "number")
    precision: str = setting("fp32", "fp32, or bf16: matmuls in bfloat16 (weights, Adam and loss in fp32)", "text",
                             ("fp32", "bf16"))
    data_seed: int | None = setting(None, "seed of the data order, apart from the seed that draws θ0 (default: the "
                                    "seed)", "index", later=True)
    hidden: tuple | None = setting(None, "hidden fully connected widths, e.g. 300,100 (default: the model's)", "counts")
    num_samples: int | None = setting(None, "MNIST-1D examples to generate (80% train, 20% test)", "count")


PROTOCOL_FREE = ("data_seed", "lr_rule", "hidden", "num_samples")  # set per grid or run, never by a protocol


@dataclass(frozen=True)
class Axes:
    """What a grid sweeps: every combination is one run."""
    dataset: tuple = setting(None, "dataset(s): mnist1d, mnist, fashion_mnist, cifar10, npz:PATH", "texts")
    model: tuple = setting(None, "model(s): lenet_300_100, mlp_8x100 (8 hidden layers of 100), conv2, conv4, conv6",
                           "texts")
    inits: tuple = setting(None, "initializer(s), or a group: all, study, seed2020 (see `ticketlib inits`)", "texts")
    seeds: tuple = setting(None, "seeds, e.g. 0,1,2 or 0-4; a seed draws θ0 and (unless data_seed) the data order",
                           "indices")
    scales: tuple = setting((None,), "multipliers of the init's weights, e.g. 0.5,1,2 (default 1)", "numbers")
    conditions: tuple = setting(("ticket",), "ticket and its controls or probes, e.g. ticket,reinit,random "
                                "(see `ticketlib conditions`)", "texts")
    protocol: str = setting("frankle2019", "a preset of the hyperparameters: frankle2019, seed2020_as_run, seed2020",
                            "text")


@dataclass(frozen=True)
class RunOptions:
    """Where and how a grid runs; none of it changes a run's numbers."""
    store: str = setting("data/runs", "run store folder", "text")
    data_root: str = setting("data", "where datasets are generated or downloaded", "text")
    device: str = setting("auto", "auto, cpu, cuda, cuda:1, ...", "text")
    workers: int | None = setting(None, "tasks in parallel (default: one per CPU core on CPU, 1 on GPU, the Dask "
                                  "cluster's threads)", "count")
    executor: str = setting("local", "local (worker processes here) or dask", "text", ("local", "dask"))
    scheduler: str | None = setting(None, "Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster "
                                    "here)", "text")


SECTIONS = (Axes, Hyperparameters, RunOptions)
FIELDS = {f.name: f for section in SECTIONS for f in fields(section)}


def default(name: str):
    f = FIELDS[name]
    return f.default_factory() if f.default is MISSING else f.default


def frankle2019() -> dict:
    """Every hyperparameter a protocol sets, at Frankle & Carbin's values (the fields' defaults)."""
    return {f.name: list(d) if isinstance(d := default(f.name), tuple) else d
            for f in fields(Hyperparameters) if f.name not in PROTOCOL_FREE}


LATER_DEFAULTS = {f.name: default(f.name) for f in fields(Hyperparameters) if f.metadata["later"]}


def _integer(name, value, where) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TicketError(f"{where}{name} must be an integer; got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise TicketError(f"{where}{name} must be an integer; got {value!r}") from None


def _items(value) -> list:
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)


def _range(text: str, name: str, where: str) -> list[int]:
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not match:
        return [_integer(name, text, where)]
    low, high = int(match[1]), int(match[2])
    if low > high:
        raise TicketError(f"{where}{name}: the range {text.strip()} runs backwards; write {high}-{low}")
    return list(range(low, high + 1))


def read(name: str, value, where: str = ""):
    """A setting's value from the command line (a string) or a YAML file (a string, number, list or
    mapping), converted to its kind and checked: one clear error naming the setting and the valid
    values otherwise. `where`: a prefix for errors, e.g. the file's name."""
    if name not in FIELDS:
        raise TicketError(f"{where}unknown setting {name!r}; valid: {', '.join(sorted(FIELDS))}")
    meta = FIELDS[name].metadata
    kind, choices = meta["kind"], meta["choices"]
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")) and kind != "text":
        return None
    if kind in ("int", "count", "index"):
        number = _integer(name, value, where)
        if number < (1 if kind == "count" else 0):
            raise TicketError(f"{where}{name} must be a {'positive' if kind == 'count' else 'non-negative'} integer; "
                              f"got {value!r}")
        return number
    if kind == "number":
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not number > 0 or math.isinf(number):
            raise TicketError(f"{where}{name} must be a positive number; got {value!r}")
        return number
    if kind == "flag":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "false", "no", "0"):
            return str(value).lower() in ("true", "yes", "1")
        raise TicketError(f"{where}{name} must be true or false; got {value!r}")
    if kind == "text":
        if not isinstance(value, str):
            raise TicketError(f"{where}{name} must be text; got {value!r}")
        if choices and value not in choices:
            raise TicketError(f"{where}unknown {name} {value!r}; valid: {', '.join(sorted(choices))}")
        return value
    if kind == "texts":
        items = _items(value) if isinstance(value, (str, list, tuple)) else None
        if not items or not all(isinstance(v, str) and v for v in items):
            raise TicketError(f"{where}{name} must be one name or a list of names; got {value!r}")
        bad = [v for v in items if choices and v not in choices]
        if bad:
            raise TicketError(f"{where}{name}: unknown {', '.join(bad)}; valid: {', '.join(choices)}")
        return tuple(items)
    if kind in ("indices", "counts"):
        out = []
        for item in value if isinstance(value, (list, tuple)) else [value]:
            for part in _items(item) if isinstance(item, str) else [item]:
                out += _range(part, name, where) if kind == "indices" and isinstance(part, str) else [_integer(name, part, where)]
        if not out or any(n < (1 if kind == "counts" else 0) for n in out):
            raise TicketError(f"{where}{name} must be {'positive' if kind == 'counts' else 'non-negative'} integers "
                              f"like {'100,100 or 300' if kind == 'counts' else '0,1,2 or 0-4'}; got {value!r}")
        return tuple(out)
    if kind == "numbers":
        items = _items(value) if isinstance(value, (str, list, tuple)) else [value]
        return tuple(read("scale", v, where) for v in items)
    if kind == "rates":
        if isinstance(value, str):
            try:
                value = {k.strip(): v for k, v in (part.split("=") for part in _items(value))}
            except ValueError:
                raise TicketError(f"{where}{name}: expected KIND=RATE pairs like fc=0.2,output=0.1; got {value!r}") from None
        if not isinstance(value, dict):
            raise TicketError(f"{where}{name} must map layer kinds to rates, e.g. fc=0.2,output=0.1; got {value!r}")
        rates = {}
        for key, rate in value.items():
            try:
                rates[str(key)] = float(rate)
            except (TypeError, ValueError):
                raise TicketError(f"{where}{name}: the rate for {key} must be a number; got {rate!r}") from None
        return rates
    raise AssertionError(kind)


def read_grid_file(path: str | Path) -> list[dict]:
    """A YAML grid file as one dict of checked settings per sub-grid. Its keys are the settings'
    names; a `grids:` list of mappings makes one sub-grid each, its keys over the file's others."""
    import yaml  # only reading grid files needs it

    path = Path(path)
    if not path.is_file():
        grids = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise TicketError(f"config file not found: {path}" + (f"; grids in {path.parent}: {', '.join(grids)}" if grids else ""))
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise TicketError(f"{path} is not valid YAML: {error}".replace("\n", " ")) from None
    if not isinstance(spec, dict):
        raise TicketError(f"{path} must hold a mapping of setting names to values")
    subgrids = spec.pop("grids", [{}])
    if not isinstance(subgrids, list) or not subgrids or not all(isinstance(g, dict) for g in subgrids):
        raise TicketError(f"{path}: grids must be a list of mappings of setting names to values")
    where = f"{path}: "
    out = []
    for subgrid in subgrids:
        merged = {str(k).replace("-", "_"): v for k, v in {**spec, **subgrid}.items()}
        for key in merged:
            if key not in FIELDS:
                raise TicketError(f"{where}unknown key {key!r}; valid: {', '.join(sorted([*FIELDS, 'grids']))}")
        out.append({key: read(key, value, where) for key, value in merged.items()})
    return out


def grid_file(grid: str | Path) -> Path:
    """configs/NAME.yaml for a bare name, else the path given."""
    return Path(grid) if str(grid).endswith((".yaml", ".yml")) else Path("configs") / f"{grid}.yaml"


def add_flags(parser) -> None:
    """One --flag per setting, its help from the field; values are read (and checked) by `read`."""
    for section in SECTIONS:
        group = parser.add_argument_group(section.__name__, section.__doc__)
        for f in fields(section):
            flag = "--" + f.name.replace("_", "-")
            if f.metadata["kind"] == "flag":
                group.add_argument(flag, dest=f.name, default=None, action="store_const", const=True,
                                   help=f.metadata["help"].replace("%", "%%"))
                group.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_const", const=False,
                                   help="the opposite")
            else:  # argparse reads % in help as a format code
                group.add_argument(flag, dest=f.name, default=None, metavar=f.metadata["kind"].upper(),
                                   help=f.metadata["help"].replace("%", "%%"))


KIND_WORDS = {"int": "integer", "count": "integer ≥ 1", "index": "integer ≥ 0", "number": "number > 0", "text": "text",
              "flag": "true or false", "texts": "names", "counts": "integers ≥ 1", "indices": "integers ≥ 0",
              "numbers": "numbers > 0", "rates": "kind=rate, …"}


def markdown_table() -> str:
    """The README's table of hyperparameters: name, default (frankle2019's), valid values, meaning."""
    lines = ["| setting | default | values | meaning |", "|---|---|---|---|"]
    for f in fields(Hyperparameters):
        value = default(f.name)
        shown = ("—" if value is None else ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict)
                 else ",".join(map(str, value)) if isinstance(value, tuple) else str(value))
        values = ", ".join(f.metadata["choices"]) or KIND_WORDS[f.metadata["kind"]]
        lines.append(f"| `{f.name}` | {shown} | {values} | {f.metadata['help']} |")
    return "\n".join(lines)


TABLE_START = "<!-- hyperparameters: made by config.markdown_table(); tests/test_docs.py checks it is current -->"
TABLE_END = "<!-- end -->"


def update_docs(path: str | Path) -> None:
    """Put markdown_table() between the markers of a document (`make docs`)."""
    text = Path(path).read_text()
    head, rest = text.split(TABLE_START + "\n", 1)
    _, tail = rest.split(TABLE_END, 1)
    Path(path).write_text(f"{head}{TABLE_START}\n{markdown_table()}\n{TABLE_END}{tail}")


def hashed_part(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in UNHASHED}


def run_id(config: dict) -> str:
    """A run's identity: the hash of its config (everything that decides its numbers)."""
    canonical = json.dumps(hashed_part(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
