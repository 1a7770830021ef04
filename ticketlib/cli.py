"""The `ticketlib` command: list initializers, run a grid, export results.

    ticketlib inits
    ticketlib run --dataset mnist1d --model lenet_300_100 --inits xavier_normal,kaiming_normal \
        --seeds 0,1 --protocol frankle2019 --conditions ticket,reinit,random --rounds 5 \
        --iterations 2000 --store data/runs
    ticketlib run --config configs/grid.yaml --executor dask --scheduler tcp://10.0.0.5:8786
    ticketlib run --config configs/grid.yaml --seeds 0-4     # YAML keys mirror the flags
    ticketlib results --store data/runs --out results.csv --out results.parquet
    ticketlib export mnist_main --store data/runs            # configs/mnist_main.yaml's results → results/mnist_main/
    ticketlib verify --sample 3                              # retrain 3 shipped runs, compare with results/
    ticketlib data mnist fashion_mnist                       # fetch and check real datasets
"""
import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from ticketlib.errors import TicketError, unknown
from ticketlib.imp.grid import expand_grid, run_grid
from ticketlib.nets.inits import INIT_GROUPS, INITIALIZERS, formula, resolve
from ticketlib.paper.build import build as build_paper
from ticketlib.imp.protocols import PROTOCOLS
from ticketlib.analysis.results import RESULTS, early_stop_summary, export, export_grid, load_results
from ticketlib.data.sources import REAL, dataset_files
from ticketlib.store.runs import Store, run_id
from ticketlib.verify import TOLERANCE, verify


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, not the usage block
        raise TicketError(message)


def names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def integers(text: str) -> list[int]:
    """'0,1,5' or '0-4' (inclusive)."""
    try:
        if "-" in text.strip("-"):
            low, high = text.split("-")
            return list(range(int(low), int(high) + 1))
        return [int(part) for part in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,1,2 or 0-4; got {text!r}") from None


def numbers(text: str) -> list[float]:
    try:
        return [float(part) for part in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.5,1,2; got {text!r}") from None


def rates(text: str) -> dict[str, float]:
    """'fc=0.2,output=0.1' → {'fc': 0.2, 'output': 0.1}."""
    try:
        return {key.strip(): float(value) for key, value in (part.split("=") for part in names(text))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE pairs like fc=0.2,output=0.1; got {text!r}") from None


GRID_FLAGS = {  # flag: (type, help); every one may also be a key of a YAML grid file
    "dataset": (names, "dataset(s): mnist1d, mnist, fashion_mnist, cifar10, npz:PATH"),
    "model": (names, "model(s): lenet_300_100, mlp_8x100 (8 hidden layers of 100), conv2, conv4, conv6"),
    "inits": (names, f"initializer(s), or a group: {', '.join(INIT_GROUPS)} (see `ticketlib inits`)"),
    "seeds": (integers, "seeds, e.g. 0,1,2 or 0-4; a seed draws θ0 and (unless --data-seed) sets the data order"),
    "data_seed": (int, "seed of the data order, apart from the seed that draws θ0 (default: the seed)"),
    "scales": (numbers, "multipliers of the init's weights, e.g. 0.5,1,2 (default 1)"),
    "conditions": (names, "ticket, reinit, random (default ticket)"),
    "protocol": (str, f"a preset of the hyperparameters below: {', '.join(PROTOCOLS)} (default frankle2019)"),
    "rounds": (int, "pruning rounds, round 0 being dense"),
    "iterations": (int, "training iterations per round"),
    "epochs": (int, "training epochs per round (instead of iterations)"),
    "lr": (float, "Adam learning rate"),
    "lr_rule": (str, "constant (one lr) or relative (each layer's lr × RMS(θ0) / Xavier normal's σ: Xavier's step relative to the weights)"),
    "batch_size": (int, "minibatch size"),
    "eval_every": (int, "iterations between evaluations, counted from a round's start (F&C: 100)"),
    "eval_every_epochs": (int, "epochs between evaluations, at epoch ends, instead of --eval-every (the 2020 code: 1)"),
    "eval_splits": (names, "splits evaluated at each point: val, test, train (accuracy on the whole training split → train_acc)"),
    "test_at": (str, "every (test accuracy at every evaluation) or early_stop (only at each round's early-stop and last rows: the same numbers there, 2 test evaluations a round)"),
    "rewind_iteration": (int, "rewind to this iteration instead of the init (late rewinding)"),
    "prune_scope": (str, "layerwise or global"),
    "prune_rates": (rates, "per layer kind, e.g. fc=0.2,conv=0.1,output=0.1 (global=0.2 for global)"),
    "val_size": (int, "examples held out of the training set for validation"),
    "num_samples": (int, "MNIST-1D examples to generate (80%% train, 20%% test)"),
    "hidden": (integers, "hidden fully connected widths, e.g. 300,100"),
    "activation": (str, "relu or leaky_relu (slope 0.05)"),
    "bias_init": (str, "default (PyTorch's U(±1/√fan_in)) or zeros"),
    "rewind_target": (str, "init (the scheme's θ0, F&C) or pytorch_default (a PyTorch-default draw made apart from the scheme: the 2020 code's bug)"),
    "optimizer_state": (str, "reset (a fresh Adam every round) or keep (one Adam for the whole run, as the 2020 code)"),
    "input_norm": (str, "standardize (the training split's mean/std) or none (pixels in [0, 1], as the 2020 code)"),
    "prune_rounding": (str, "half_up or floor (the 2020 code's int()) for the count pruned per tensor"),
    "precision": (str, "fp32, or bf16: matmuls in bfloat16 via autocast (weights, Adam and loss in fp32), for CPUs with BF16 and GPUs"),
    "data_order": (str, "per_round (each round replays epochs 0..n) or continuous (new shuffles over the whole run, as the 2020 code)"),
}
RUN_FLAGS = {
    "store": (str, "run store folder (default data/runs)"),
    "data_root": (str, "where datasets are generated/downloaded (default data)"),
    "device": (str, "auto, cpu, cuda, cuda:1, ... (default auto)"),
    "workers": (int, "tasks in parallel (default: one per CPU core on CPU, 1 on GPU, the Dask cluster's threads)"),
    "executor": (str, "local (worker processes here, the default) or dask"),
    "scheduler": (str, "Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster here)"),
}


def yaml_arguments(path: str) -> list[list[str]]:
    """A YAML grid file as the equivalent command-line flags: one list per sub-grid. A file's
    `grids:` list of mappings makes one sub-grid each, its keys over the file's other keys."""
    if not Path(path).is_file():
        raise TicketError(f"config file not found: {path}")
    try:
        spec = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise TicketError(f"{path} is not valid YAML: {error}".replace("\n", " ")) from None
    if not isinstance(spec, dict):
        raise TicketError(f"{path} must hold a mapping of flag names to values")
    subgrids = spec.pop("grids", [{}])
    if not isinstance(subgrids, list) or not subgrids or not all(isinstance(g, dict) for g in subgrids):
        raise TicketError(f"{path}: grids must be a list of mappings of flag names to values")
    return [flags(path, {**spec, **subgrid}) for subgrid in subgrids]


def flags(path: str, spec: dict) -> list[str]:
    valid = {*GRID_FLAGS, *RUN_FLAGS, "prune_biases"}
    argv = []
    for key, value in spec.items():
        key = str(key).replace("-", "_")
        if key not in valid:
            raise TicketError(f"{path}: unknown key {key!r}; valid: {', '.join(sorted(valid | {'grids'}))}")
        flag = "--" + key.replace("_", "-")
        if key == "prune_biases":
            argv.append(flag if value else "--no-prune-biases")
        elif isinstance(value, dict):
            argv += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, list):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


def build_parser() -> Parser:
    parser = Parser(prog="ticketlib", description="Lottery-ticket experiments across initializers.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands.add_parser("inits", help="list the initializers and their formulas")
    run = commands.add_parser("run", help="run (or finish) a grid of IMP runs")
    run.add_argument("--config", help="YAML file whose keys mirror these flags; flags override it")
    for flag, (kind, text) in {**GRID_FLAGS, **RUN_FLAGS}.items():
        run.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind, help=text)
    run.add_argument("--prune-biases", action=argparse.BooleanOptionalAction, default=None,
                     help="prune bias vectors too (the seed2020 protocols do)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    paper = commands.add_parser("paper", help="build paper/paper.html and paper/paper.pdf from paper.md")
    paper.add_argument("--paper-dir", default="paper", help="folder with paper.md, references.bib, generated/")
    paper.add_argument("--figures", default="figures", help="folder with the figures")
    paper.add_argument("--results", default=str(RESULTS), help="folder of exported grid results (checked against the manifest)")
    data = commands.add_parser("data", help="fetch real datasets into DATA_ROOT/datasets/, checked against pinned checksums")
    data.add_argument("names", nargs="*", default=["mnist", "fashion_mnist"],
                      help=f"datasets among {', '.join(REAL)} (default: mnist fashion_mnist)")
    data.add_argument("--data-root", default="data", help="where datasets are kept (default data)")
    grid = commands.add_parser("export", help="write a grid's results (tidy table, last masks, identity) for the notebooks")
    grid.add_argument("grid", help="a grid file's name in configs/ (configs/NAME.yaml), or its path")
    grid.add_argument("--store", default="data/runs", help="run store folder holding the grid's finished runs")
    grid.add_argument("--out", default=str(RESULTS), help=f"results folder (default {RESULTS}; the grid gets a folder in it)")
    grid.add_argument("--data-root", default="data", help="where datasets are kept, for the measures (default data)")
    check = commands.add_parser("verify", help="retrain a random sample of shipped runs from scratch and compare "
                                               "them with results/ (bit for bit here; elsewhere within tolerance)")
    check.add_argument("--sample", type=int, default=3, help="how many runs (default 3)")
    check.add_argument("--seed", type=int, default=0, help="seed of the draw of runs and rounds (default 0)")
    check.add_argument("--results", default=str(RESULTS), help=f"results folder (default {RESULTS})")
    check.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")
    check.add_argument("--data-root", default="data", help="where datasets are kept (default data)")
    results = commands.add_parser("results", help="export all runs as one tidy table")
    results.add_argument("--store", default="data/runs", help="run store folder")
    results.add_argument("--out", action="append", help="FILE.parquet or FILE.csv (may repeat); a summary is printed too")
    return parser


def command_inits(_args) -> None:
    width = max(map(len, INITIALIZERS))
    for name in INITIALIZERS:
        print(f"{name:<{width}}  {formula(name)}")
    print(f"\n{len(INITIALIZERS)} schemes; each is multiplied by --scales. "
          f"Groups: {'; '.join(f'{g}: {len(v)} schemes' for g, v in INIT_GROUPS.items())}.")


def grid_configs(args) -> list[dict]:
    """The run configs that parsed `run` arguments describe."""
    missing = [f"--{flag}" for flag in ("dataset", "model", "inits", "seeds") if getattr(args, flag) is None]
    if missing:
        raise TicketError(f"ticketlib run needs {', '.join(missing)} (as flags or in --config)")
    hyper = {flag: getattr(args, flag) for flag in GRID_FLAGS
             if flag not in ("dataset", "model", "inits", "seeds", "scales", "conditions", "protocol")}
    return expand_grid(args.dataset, args.model, resolve(args.inits), args.seeds,
                       args.conditions or ["ticket"], args.scales or [None],
                       args.protocol or "frankle2019", prune_biases=args.prune_biases, **hyper)


def grid_file(grid: str) -> Path:
    """configs/NAME.yaml for a bare name, else the path given."""
    return Path(grid) if grid.endswith((".yaml", ".yml")) else Path("configs") / f"{grid}.yaml"


def command_export(args) -> None:
    path = grid_file(args.grid)
    configs = file_configs(args.grid)
    folder = export_grid(path.stem, configs, args.store, args.out, args.data_root)
    print(f"grid {path.stem}: {len(configs)} runs → {folder}/")


def file_configs(grid: str, overrides: list[str] = ()) -> list[dict]:
    """Every run config of a grid file (its sub-grids in order, each run once); `overrides`: flags over it."""
    parser, configs = build_parser(), {}
    for argv in yaml_arguments(str(grid_file(grid))):
        for config in grid_configs(parser.parse_args(["run", *argv, *overrides])):
            configs.setdefault(run_id(config), config)
    return list(configs.values())


def command_verify(args) -> None:
    def report(check):
        verdict = ("identical" if check.identical else
                   f"within tolerance ({check.worst})" if check.within else f"DIFFERENT ({check.worst})")
        print(f"{check.grid} run {check.run} rounds 0-{check.rounds - 1}: {verdict}", flush=True)
    checks = verify(args.sample, args.seed, args.results, file_configs, args.device, args.data_root, report)
    bad = [c for c in checks if not c.within]
    if bad:
        raise TicketError(f"{len(bad)} of {len(checks)} retrained runs differ from the shipped results beyond "
                          f"tolerance (accuracies {TOLERANCE['accuracy']:g}, losses {TOLERANCE['loss']:.0%})")
    same = sum(c.identical for c in checks)
    print(f"{len(checks)} runs retrained: {same} identical bit for bit, {len(checks) - same} within tolerance")


def command_run(args, overrides: list[str]) -> None:
    if args.scheduler and args.executor != "dask":
        raise TicketError("--scheduler needs --executor dask")
    configs = file_configs(args.config, overrides) if args.config else grid_configs(args)
    store = Store(args.store or "data/runs")
    start = time.perf_counter()
    counts = run_grid(configs, store, args.device or "auto", args.data_root or "data", args.workers,
                      progress=not args.no_progress, executor=args.executor or "local", scheduler=args.scheduler)
    print(f"{counts['runs']} runs: {counts['trained']} rounds trained, {counts['diverged']} runs diverged, "
          f"{time.perf_counter() - start:.1f} s. Store: {store.root}")


def command_data(args) -> None:
    for name in args.names:
        if name not in REAL:
            raise unknown("dataset", name, REAL)
    for name in args.names:
        files = dataset_files(name, Path(args.data_root))
        print(f"{name}: {len(files)} files in {Path(args.data_root) / 'datasets' / name}/ ({REAL[name].licence})")


def command_results(args) -> None:
    if not Path(args.store).is_dir():
        raise TicketError(f"run store not found: {args.store}")
    table = load_results(args.store)
    if table.empty:
        raise TicketError(f"no finished rounds in {args.store}; run `ticketlib run --store {args.store} ...` first")
    for out in args.out or []:
        export(table, out)
        print(f"{len(table)} rows from {table.run_id.nunique()} runs → {out}")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(early_stop_summary(table).round(4).to_string(index=False))


def without_config(argv: list[str]) -> list[str]:
    """The flags given beside --config, which override every sub-grid of its file."""
    kept, skip = [], False
    for arg in argv:
        if not skip and arg != "--config" and not arg.startswith("--config="):
            kept.append(arg)
        skip = arg == "--config"
    return kept


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "run" and args.config:  # YAML first, so flags given after override it
            args = parser.parse_args(["run", *yaml_arguments(args.config)[0], *argv[1:]])
        if args.command == "inits":
            command_inits(args)
        elif args.command == "run":
            command_run(args, without_config(argv[1:]))
        elif args.command == "data":
            command_data(args)
        elif args.command == "export":
            command_export(args)
        elif args.command == "verify":
            command_verify(args)
        elif args.command == "paper":
            for path in build_paper(args.paper_dir, args.figures, args.paper_dir, args.results):
                print(f"wrote {path}")
        else:
            command_results(args)
    except TicketError as error:
        print(f"ticketlib: error: {error}", file=sys.stderr)
        return 2
    return 0
