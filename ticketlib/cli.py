"""The `ticketlib` command: run grids, export and check results, take tickets away, build the paper.

    ticketlib run --config configs/mnist_main.yaml                 # a grid file; flags override it
    ticketlib run --dataset mnist1d --model lenet_300_100 --inits xavier_normal,kaiming_normal \\
        --seeds 0,1 --conditions ticket,reinit,random --rounds 5 --iterations 2000
    ticketlib run --config configs/grid.yaml --executor dask --scheduler tcp://10.0.0.5:8786
    ticketlib results --store data/runs --out results.csv          # every run in a store, one table
    ticketlib export mnist_main --store data/runs                  # a grid's results → results/mnist_main/
    ticketlib ticket mnist_main --init xavier_normal --seed 0 --round 10 --out ticket.pt
    ticketlib verify --sample 3                                    # retrain 3 shipped runs, compare
    ticketlib inits | conditions | data mnist | paper

Every setting is a field of config.py (type, default, valid values, help); modules load only
when their command runs, so --help and bad input answer at once.
"""
import argparse
import os
import signal
import sys
import time
from pathlib import Path

from ticketlib import __version__
from ticketlib.config import FIELDS, RunOptions, add_flags, grid_file, read
from ticketlib.errors import TicketError

RESULTS = "results"
STOPPED = "stopped; rerun the same command to resume (finished rounds are kept)"


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)  # a flag is its whole name, as a grid file's key is

    def error(self, message):  # one line on stderr, not the usage block
        raise TicketError(f"{message} (see {self.prog} --help)")


class Terminated(Exception):
    """SIGTERM, raised in the main process so that it stops as Ctrl-C does."""


def build_parser() -> Parser:
    parser = Parser(prog="ticketlib", description="Lottery-ticket experiments across initializers.")
    parser.add_argument("--version", action="version", version=f"ticketlib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands.add_parser("inits", help="list the initializers and their formulas")
    commands.add_parser("conditions", help="list the conditions a run can train under")
    run = commands.add_parser("run", help="run (or finish) a grid of IMP runs",
                              description="Every flag is also a key of a YAML grid file (--config).")
    run.add_argument("--config", help="YAML grid file whose keys are these settings' names; flags override it")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_flags(run)
    results = commands.add_parser("results", help="all runs of a store as one tidy table, and a summary")
    results.add_argument("--store", default="data/runs", help="run store folder")
    results.add_argument("--out", action="append", help="FILE.parquet or FILE.csv (may repeat)")
    grid = commands.add_parser("export", help="write a grid's results (tables, last masks, identity) for the notebooks")
    grid.add_argument("grid", help="a grid file's name in configs/ (configs/NAME.yaml), or its path")
    grid.add_argument("--store", default="data/runs", help="run store folder holding the grid's finished runs")
    grid.add_argument("--out", default=RESULTS, help=f"results folder (default {RESULTS}; the grid gets a folder in it)")
    grid.add_argument("--data-root", default="data", help="where datasets are kept, for the measures (default data)")
    ticket = commands.add_parser("ticket", help="export one ticket (its mask and start weights) as a state_dict "
                                                "that torch.nn.utils.prune can apply")
    ticket.add_argument("grid", help="the grid file whose run it is (configs/NAME.yaml or a path)")
    ticket.add_argument("--init", required=True, help="the run's initializer")
    ticket.add_argument("--seed", required=True, help="the run's seed")
    ticket.add_argument("--round", required=True, help="the round whose mask to take (0 is dense)")
    ticket.add_argument("--condition", default="ticket", help="the run's condition (default ticket)")
    ticket.add_argument("--scale", default=None, help="the run's scale, where the grid has several")
    ticket.add_argument("--store", default="data/runs", help="run store folder holding the run (else the shipped "
                                                             "results' last-round mask is taken)")
    ticket.add_argument("--results", default=RESULTS, help=f"results folder (default {RESULTS})")
    ticket.add_argument("--data-root", default="data", help="where datasets are kept (default data)")
    ticket.add_argument("--out", required=True, help="the .pt file to write")
    check = commands.add_parser("verify", help="retrain a random sample of shipped runs from scratch and compare "
                                               "them with results/ (bit for bit on the machine kind that made "
                                               "them; elsewhere as the paper's intervals allow)")
    check.add_argument("--sample", default="3", help="how many runs (default 3)")
    check.add_argument("--seed", default="0", help="seed of the draw of runs and rounds (default 0)")
    check.add_argument("--results", default=RESULTS, help=f"results folder (default {RESULTS})")
    check.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")
    check.add_argument("--data-root", default="data", help="where datasets are kept (default data)")
    data = commands.add_parser("data", help="fetch real datasets into DATA_ROOT/datasets/, checked against pinned checksums")
    data.add_argument("names", nargs="*", default=["mnist", "fashion_mnist"], help="datasets (default: mnist fashion_mnist)")
    data.add_argument("--data-root", default="data", help="where datasets are kept (default data)")
    data.add_argument("--apt-update", action="store_true",
                      help="let a Debian package source refresh apt's index (apt-get update) if its package is missing")
    paper = commands.add_parser("paper", help="build paper/paper.html and paper/paper.pdf from paper.md")
    paper.add_argument("--paper-dir", default="paper", help="folder with paper.md, references.bib, generated/")
    paper.add_argument("--figures", default="figures", help="folder with the figures")
    paper.add_argument("--results", default=RESULTS, help="folder of exported grid results (checked against the manifest)")
    return parser


def whole(flag: str, text: str, least: int = 0) -> int:
    """An integer flag's value, at least `least`; one clear line otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise TicketError(f"{flag} must be an integer of at least {least}; got {text!r}")
    return value


def given(args) -> dict:
    """The settings given as flags, read and checked."""
    return {name: read(name, value, f"--{name.replace('_', '-')}: ") for name in FIELDS
            if (value := getattr(args, name, None)) is not None}


def command_inits(_args) -> None:
    from ticketlib.nets.inits import INIT_GROUPS, INITIALIZERS, formula
    width = max(map(len, INITIALIZERS))
    for name in INITIALIZERS:
        print(f"{name:<{width}}  {formula(name)}")
    print(f"\n{len(INITIALIZERS)} schemes; each is multiplied by --scales. "
          f"Groups: {'; '.join(f'{g}: {len(v)} schemes' for g, v in INIT_GROUPS.items())}.")


def command_conditions(_args) -> None:
    from ticketlib.imp.conditions import CONDITIONS
    width = max(map(len, CONDITIONS))
    for name, condition in CONDITIONS.items():
        doc = (condition.start.__doc__ if condition.start else condition.mask.__doc__ or "").strip().split("\n\n")[0]
        doc = " ".join(doc.split()).removesuffix(".")
        extra = ", on another data order" if condition.other_order else ""
        print(f"{name:<{width}}  {doc}{extra}.")


def command_run(args) -> None:
    from ticketlib.imp.grid import file_configs, spec_configs
    flags = given(args)
    specs = [{**spec, **flags} for spec in file_specs(args.config)] if args.config else [flags]
    options = {f.name: specs[0].get(f.name, FIELDS[f.name].default) for f in RunOptions.__dataclass_fields__.values()}
    if options["scheduler"] and options["executor"] != "dask":
        raise TicketError("--scheduler needs --executor dask")
    configs = file_configs(args.config, flags) if args.config else spec_configs(flags)
    check_device(options["device"])
    store = open_store(options["store"])
    from ticketlib.imp.grid import run_grid
    start = time.perf_counter()
    counts = run_grid(configs, store, options["device"], options["data_root"], options["workers"],
                      progress=not args.no_progress, executor=options["executor"], scheduler=options["scheduler"])
    print(f"{counts['runs']} runs: {counts['trained']} rounds trained, {counts['diverged']} runs diverged, "
          f"{time.perf_counter() - start:.0f} s.")
    print(run_summary(configs, store))


def file_specs(path) -> list[dict]:
    from ticketlib.config import read_grid_file
    return read_grid_file(grid_file(path))



def check_device(device: str) -> None:
    if device == "auto":
        return
    import torch
    try:
        torch.device(device)
    except RuntimeError:
        raise TicketError(f"--device {device}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TicketError(f"--device {device}: this torch sees no CUDA GPU (torch {torch.__version__}); "
                              "use --device cpu, or install a CUDA build of torch")


def open_store(root: str):
    """The store folder, made if missing; one clear line if it is a file or cannot be written."""
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise TicketError(f"store {path} is a file, not a folder; give --store a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise TicketError(f"store {path} cannot be written ({error.strerror}); give --store a writable folder") from None
    from ticketlib.store.runs import Store
    return Store(path)


def run_summary(configs: list[dict], store) -> str:
    """Per init: the tickets' test accuracy at early stop, dense and at the sparsest level, and where to look."""
    from ticketlib.imp.export import load_results
    table = load_results(store.root, configs)
    stops = table[table.is_early_stop.astype(bool) & (table.condition == "ticket")]
    lines = []
    if len(stops):
        last = stops["round"].max()
        dense = stops[stops["round"] == 0].groupby("init").test_acc.mean()
        sparse = stops[stops["round"] == last].groupby("init").test_acc.mean()
        level = stops[stops["round"] == last].weights_remaining.iloc[0]
        width = max(map(len, dense.index))
        lines.append(f"{'init':<{width}}  dense   at {level:.1f}% of weights (test accuracy at early stop, mean over seeds)")
        lines += [f"{init:<{width}}  {dense[init] * 100:5.1f}%  {sparse.get(init, float('nan')) * 100:5.1f}%"
                  for init in dense.index]
    lines.append(f"Runs are in {store.root}; every row: ticketlib results --store {store.root} --out results.csv")
    return "\n".join(lines)


def command_export(args) -> None:
    from ticketlib.imp.export import export_grid
    from ticketlib.imp.grid import file_configs
    path = grid_file(args.grid)
    configs = file_configs(args.grid)
    folder = export_grid(path.stem, configs, args.store, args.out, args.data_root)
    print(f"grid {path.stem}: {len(configs)} runs → {folder}/")


def command_ticket(args) -> None:
    from ticketlib.imp.grid import file_configs
    from ticketlib.imp.tickets import export_ticket
    seed, r = whole("--seed", args.seed), whole("--round", args.round)
    configs = [c for c in file_configs(args.grid) if c["init"] == args.init and c["seed"] == seed
               and c["condition"] == args.condition and (args.scale is None or c["scale"] == read("scale", args.scale))]
    if len(configs) != 1:
        every = file_configs(args.grid)
        choices = "; ".join(f"{key}s: {', '.join(str(v) for v in sorted({c[key] for c in every}))}"
                            for key in ("init", "seed", "condition"))
        raise TicketError(f"{len(configs)} runs of {grid_file(args.grid)} match --init {args.init} --seed {seed} "
                          f"--condition {args.condition}" + (" (give --scale)" if len(configs) > 1 else f" ({choices})"))
    path = export_ticket(configs[0], args.store, r, args.out, grid_file(args.grid).stem, args.results, args.data_root)
    print(f"wrote {path}: load it with ticketlib.imp.tickets.apply_ticket (README: Take a ticket away)")


def command_verify(args) -> None:
    from ticketlib.imp.grid import file_configs
    from ticketlib.verify import verify
    sample, seed = whole("--sample", args.sample, 1), whole("--seed", args.seed)

    def report(check):
        print(f"{check.grid} run {check.run} rounds 0-{check.rounds - 1}: {check.verdict}", flush=True)
    checks = verify(sample, seed, args.results, file_configs, args.device, args.data_root, report)
    bad = [c for c in checks if not c.passed]
    if bad:
        raise TicketError(f"{len(bad)} of {len(checks)} retrained runs disagree with the shipped results: "
                          + "; ".join(c.verdict for c in bad))
    kinds = sorted({c.kind for c in checks})
    print(f"{len(checks)} runs retrained, all agree ({' / '.join(kinds)})")


def command_data(args) -> None:
    from ticketlib.data.sources import REAL, dataset_files
    for name in args.names:
        if name not in REAL:
            raise TicketError(f"unknown dataset {name!r}; valid: {', '.join(sorted(REAL))}")
    for name in args.names:
        files = dataset_files(name, Path(args.data_root), apt_update=args.apt_update)
        print(f"{name}: {len(files)} files in {Path(args.data_root) / 'datasets' / name}/ ({REAL[name].licence})")


def command_results(args) -> None:
    import pandas as pd

    from ticketlib.analysis.results import early_stop_summary
    from ticketlib.imp.export import load_results, save_table
    if not Path(args.store).is_dir():
        raise TicketError(f"run store not found: {args.store}")
    for out in args.out or []:
        if Path(out).suffix not in (".parquet", ".csv"):
            raise TicketError(f"results file must end in .parquet or .csv; got {Path(out).name}")
    table = load_results(args.store)
    if table.empty:
        raise TicketError(f"no finished rounds in {args.store}; run `ticketlib run --store {args.store} ...` first")
    for out in args.out or []:
        save_table(table, out)
        print(f"{len(table)} rows from {table.run_id.nunique()} runs → {out}")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(early_stop_summary(table).round(4).to_string(index=False))


def command_paper(args) -> None:
    from ticketlib.paper.build import build
    for path in build(args.paper_dir, args.figures, args.paper_dir, args.results):
        print(f"wrote {path}")


COMMANDS = {"inits": command_inits, "conditions": command_conditions, "run": command_run, "results": command_results,
            "export": command_export, "ticket": command_ticket, "verify": command_verify, "data": command_data,
            "paper": command_paper}


def terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        args, unknown = build_parser().parse_known_args(argv)
        if unknown:  # named here, where the command is known, so that the hint points at its flags
            raise TicketError(f"unrecognized arguments: {' '.join(unknown)} (see ticketlib {args.command} --help)")
        COMMANDS[args.command](args)
    except TicketError as error:
        print(f"ticketlib: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C would interrupt the shutdown itself
        print(f"\nticketlib: {STOPPED}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"ticketlib: terminated; {STOPPED.removeprefix('stopped; ')}", file=sys.stderr)
        return 143
    except BrokenPipeError:  # the reader of our output went away (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
