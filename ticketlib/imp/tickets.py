"""Take a ticket away: one run's mask at a round, with the weights it starts from (and, from a
store, the weights that round trained to), as a file any PyTorch code can load.

    ticketlib ticket mnist_main --init xavier_normal --seed 0 --round 10 --out ticket.pt

The file is a dict: `config` (the run's), `round`, `masks` (prunable tensor name → bool tensor),
`start` (the state_dict the round trains from: θ0, or the weights at the rewind iteration),
`trained` (the state_dict after training that round; absent when taken from shipped results,
which keep masks but no weights) and `test_accuracy` (at the round's early stop). Applied with
torch.nn.utils.prune, the masks stay in force while the network trains on:

    ticket = torch.load("ticket.pt")
    model = apply_ticket(ticket)        # the registered model, `start` loaded, prune.custom_from_mask applied

The store's parameter names are the model's, so in code without ticketlib the same is a loop of
`prune.custom_from_mask(model.get_submodule(name.rsplit(".", 1)[0]), "weight", mask)`.
"""
from pathlib import Path

import torch
from torch.nn.utils import prune

from ticketlib.analysis.results import load_grid
from ticketlib.config import run_id
from ticketlib.data.datasets import load_dataset
from ticketlib.errors import TicketError
from ticketlib.imp.conditions import CONDITIONS
from ticketlib.nets.inits import initialize
from ticketlib.nets.models import build_model
from ticketlib.store.runs import Store


def dataset_of(config: dict, data_root):
    from ticketlib.imp.grid import data_key
    return load_dataset(*data_key(config), root=data_root)


def export_ticket(config: dict, store, r: int, out, grid: str | None = None, results="results",
                  data_root="data") -> Path:
    """Write run `config`'s round-`r` ticket to `out` from the store, or, where the store lacks
    the round, from a shipped grid's last-round masks (`grid`)."""
    data = dataset_of(config, data_root)
    run = Store(store).find(config)
    if run is not None and run.has_round(r):
        metrics = run.metrics(r)
        masks, trained = run.tensors(r, "mask"), run.tensors(r, "weights")
        start = (run.tensors(0, "rewind") if r > 0 and config["rewind_iteration"] and CONDITIONS[config["condition"]].late_rewind
                 else None)
        accuracy = next((row["test_acc"] for row in metrics["rows"] if row.get("is_early_stop")), None)
    elif grid is not None:
        shipped = load_grid(grid, results)
        rows = shipped.table[shipped.table.run_id == run_id(config)]
        if rows.empty or int(rows["round"].max()) != r:
            last = int(rows["round"].max()) if len(rows) else None
            raise TicketError(f"the store {store} lacks round {r} of this run, and results/{grid} keeps only the last "
                              f"round's mask{f' (round {last})' if last is not None else ''}")
        masks = {k: torch.from_numpy(v) for k, v in shipped.masks()[run_id(config)].items()}
        trained, start = None, None
        accuracy = float(rows[(rows["round"] == r) & rows.is_early_stop.astype(bool)].test_acc.iloc[0])
        if config["rewind_iteration"]:
            raise TicketError("a late-rewound ticket starts from trained weights, which shipped results do not keep; "
                              "export it from the store that trained it")
    else:
        raise TicketError(f"the store {store} has no round {r} of this run")
    if start is None:
        model = build_model(config["model"], data.input_shape, data.num_classes, config["hidden"], config["activation"])
        start = initialize(model, config["init"], config["scale"], config["bias_init"], config["seed"],
                           CONDITIONS[config["condition"]].draw)
    ticket = dict(config=config, round=r, masks=masks, start={k: v.clone() for k, v in start.items()},
                  test_accuracy=accuracy, input_shape=list(data.input_shape), classes=data.num_classes)
    if trained is not None:
        ticket["trained"] = trained
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ticket, out)
    return out


def apply_ticket(ticket: dict, weights: str = "start") -> torch.nn.Module:
    """The registered model with the ticket's `weights` ("start" or "trained") loaded and its masks
    applied by torch.nn.utils.prune (so they hold while it trains)."""
    config = ticket["config"]
    model = build_model(config["model"], tuple(ticket["input_shape"]), ticket["classes"], config["hidden"],
                        config["activation"])
    model.load_state_dict(ticket[weights])
    for name, mask in ticket["masks"].items():
        module, parameter = name.rsplit(".", 1)
        prune.custom_from_mask(model.get_submodule(module), parameter, mask)
    return model
