"""The common lottery-ticket idiom, as the benchmark's baseline: one `nn.Module` per ticket, a
`DataLoader` over a `TensorDataset`, masks through `torch.nn.utils.prune`, Adam, the mask
re-applied after each step, tickets trained one after another. Same grid, same hyperparameters
and the same evaluations as ticketlib's engine; not the same numbers (other data order).
Evaluation: one forward pass over a split, or (`loader_eval`) a `DataLoader` over it, loss and
accuracy, as lottery-ticket code bases do for real datasets.
"""
import torch
from torch.nn import functional as F
from torch.nn.utils import prune
from torch.utils.data import DataLoader, TensorDataset

from ticketlib.nets.inits import initialize
from ticketlib.nets.models import build_model


@torch.no_grad()
def accuracy(model, x, y) -> float:
    model.eval()
    correct = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return correct


@torch.no_grad()
def loader_evaluation(model, x, y, batch_size=1000) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    for xb, yb in DataLoader(TensorDataset(x, y), batch_size=batch_size):
        logits = model(xb)
        loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train()
    return loss / len(y), correct / len(y)


def train_ticket(model, layers, data, config, seed, loader_eval=False):
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=config["batch_size"],
                        shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    iteration = 0
    while iteration < config["iterations"]:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for layer, _ in layers:
                    layer.weight_orig.mul_(layer.weight_mask)
            iteration += 1
            if iteration % config["eval_every"] == 0:  # evaluated as often as the engine does
                for x, y in ((data.x_val, data.y_val), (data.x_test, data.y_test)):
                    (loader_evaluation if loader_eval else accuracy)(model, x, y)
            if iteration == config["iterations"]:
                return


def run_idiom(data, inits_seeds, config, rounds, loader_eval=False):
    """IMP for each (init, seed): train, prune the smallest weights per layer, rewind to θ0."""
    for init, seed in inits_seeds:
        model = build_model(config["model"], data.input_shape, data.num_classes, config["hidden"])
        theta0 = initialize(model, init, 1.0, "default", seed, "init")
        modules = dict(model.named_modules())
        layers = [(modules[name], kind) for name, kind in model.layer_kinds.items()]
        for layer, _ in layers:
            prune.identity(layer, "weight")
        for _ in range(rounds):
            with torch.no_grad():
                for name, (layer, _) in zip(model.layer_kinds, layers):
                    layer.weight_orig.copy_(theta0[f"{name}.weight"] * layer.weight_mask)
                    layer.bias.copy_(theta0[f"{name}.bias"])
            train_ticket(model, layers, data, config, seed, loader_eval)
            for layer, kind in layers:  # amount is a fraction of the weights still unpruned
                prune.l1_unstructured(layer, "weight", amount=config["prune_rates"][kind])
