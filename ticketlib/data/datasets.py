"""Datasets as tensors held in memory, split into train / validation / test.

Registered names (`register_dataset`): `mnist1d` (generated offline by the `mnist1d` package),
`mnist`, `fashion_mnist`, `cifar10` (read by our own readers from verified files, fetched as
sources.py says); and `npz:PATH` for your own arrays `x_train, y_train, x_test, y_test` (images
uint8 N×H×W(×C), or float N×D). A dataset is a function returning those four arrays.

The validation split is carved from the training set with a fixed seed (the same for every
run). Inputs are standardized with statistics of what remains of the training set, or left as
they are (`input_norm="none"`: images as pixels in [0, 1], as the 2020 study had them).
"""
import hashlib
import os
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ticketlib.config import INPUT_NORMS
from ticketlib.data.sources import REAL, real_arrays
from ticketlib.errors import TicketError, unknown
from ticketlib.seeds import generator

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def to(self, device) -> "Data":
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in vars(self).items()}
        return Data(**moved)


@dataclass(frozen=True)
class DatasetSpec:
    arrays: Callable[[int | None, Path], tuple]  # (num_samples, root) → x_train, y_train, x_test, y_test
    val_size: Callable[[int | None], int]        # num_samples → examples held out of train for validation
    default_samples: int | None = None           # generated datasets: how many examples unless told


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, val_size: Callable[[int | None], int], default_samples: int | None = None):
    """Register `arrays(num_samples, root)` under `name`; num_samples applies where default_samples is set."""
    def add(arrays):
        DATASETS[name] = DatasetSpec(arrays, val_size, default_samples)
        return arrays
    return add


def check_dataset(name: str) -> None:
    if name.startswith("npz:"):
        npz_arrays(name[4:])
    elif name not in DATASETS:
        raise unknown("dataset", name, [*DATASETS, "npz:PATH"])


def default_val_size(name: str, num_samples: int | None) -> int:
    """F&C hold out 5K of MNIST and CIFAR-10; the smaller sets a tenth of their training set."""
    if name.startswith("npz:"):
        return len(npz_arrays(name[4:])[1]) // 10
    return DATASETS[name].val_size(num_samples)


def fingerprint(name: str) -> str | None:
    """Content hash of a user's npz file, so changing the file changes the run's address."""
    if not name.startswith("npz:"):
        return None
    return hashlib.sha256(Path(name[4:]).read_bytes()).hexdigest()[:16]


_CACHE: dict = {}


def check_input_norm(name: str) -> None:
    if name not in INPUT_NORMS:
        raise unknown("input_norm", name, INPUT_NORMS)


def load_dataset(name: str, num_samples: int | None = None, val_size: int | None = None,
                 input_norm: str = "standardize", root: str | Path = "data") -> Data:
    """Load (and cache in this process) one dataset, split and normalised, on the CPU."""
    check_dataset(name)
    check_input_norm(input_norm)
    num_samples = num_samples or (None if name.startswith("npz:") else DATASETS[name].default_samples)
    if val_size is None:
        val_size = default_val_size(name, num_samples)
    key = (name, num_samples, val_size, input_norm, str(root), fingerprint(name))
    if key not in _CACHE:
        _CACHE[key] = split_and_normalise(*raw_arrays(name, num_samples, Path(root)), val_size, input_norm)
    return _CACHE[key]


def raw_arrays(name, num_samples, root):
    if name.startswith("npz:"):
        return npz_arrays(name[4:])
    return DATASETS[name].arrays(num_samples, root)


@register_dataset("mnist1d", val_size=lambda num_samples: int(0.8 * num_samples) // 10, default_samples=5000)
def mnist1d_arrays(num_samples: int, root: Path):
    """Generate MNIST-1D offline (never its download helper), cached as an npz under root."""
    path = root / "datasets" / f"mnist1d-{num_samples}.npz"
    if not path.exists():
        from mnist1d.data import get_dataset_args, make_dataset
        args = get_dataset_args()
        args.num_samples = num_samples
        state = np.random.get_state(), random.getstate()
        try:  # make_dataset reseeds the global RNGs; leave them as we found them
            d = make_dataset(args)
        finally:
            np.random.set_state(state[0])
            random.setstate(state[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # notebooks may generate it side by side
        np.savez(tmp, x_train=d["x"].astype(np.float32), y_train=d["y"],
                 x_test=d["x_test"].astype(np.float32), y_test=d["y_test"])
        tmp.replace(path)
    return npz_arrays(str(path))


def downloaded(name: str):
    """A real dataset's arrays, read from its verified files (sources.py)."""
    return lambda num_samples, root: real_arrays(name, root)


for _name in REAL:  # F&C's 5K validation examples
    register_dataset(_name, val_size=lambda num_samples: 5000)(downloaded(_name))


MIN_TRAIN = 20  # training examples an npz dataset needs at least


def npz_arrays(path: str):
    """The four arrays of a user's npz file, checked before any run starts: present, matching
    lengths and example shapes, finite inputs, integer class labels with at least two classes."""
    if not Path(path).is_file():
        raise TicketError(f"npz:{path} is a folder; name the .npz file in it" if Path(path).is_dir()
                          else f"npz file not found: {path}")
    if not zipfile.is_zipfile(path):  # checked first: np.load would try it as a pickle and say so
        with open(path, "rb") as file:
            kind = "a single .npy array" if file.read(6) == b"\x93NUMPY" else "not a zip archive"
        raise TicketError(f"{path} is {kind}, not an npz archive (numpy.savez's zip of named arrays)")
    try:
        f = np.load(path)  # allow_pickle stays off: object arrays are refused, never unpickled
    except Exception as error:
        raise TicketError(f"cannot read {path} as npz: {error}") from None
    with f:
        missing = [a for a in NPZ_ARRAYS if a not in f.files]
        if missing:
            raise TicketError(f"{path} lacks array(s) {', '.join(missing)}; needs {', '.join(NPZ_ARRAYS)}")
        try:
            arrays = tuple(f[a] for a in NPZ_ARRAYS)
        except ValueError:  # object arrays: reading them would mean unpickling the file's code
            raise TicketError(f"{path} holds object arrays, which are never unpickled; store numeric arrays") from None
    for split, (x, y) in (("train", arrays[:2]), ("test", arrays[2:])):
        if len(x) != len(y):
            raise TicketError(f"{path}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        check_content(path, split, x, y)
    x_train, y_train, x_test, y_test = arrays
    if x_train.shape[1:] != x_test.shape[1:]:
        raise TicketError(f"{path}: x_train's examples are {x_train.shape[1:]} but x_test's are {x_test.shape[1:]}")
    if len(y_train) < MIN_TRAIN:
        raise TicketError(f"{path}: x_train has {len(y_train)} examples; needs at least {MIN_TRAIN} "
                          f"(a tenth is held out for validation)")
    if len(y_test) == 0:
        raise TicketError(f"{path}: x_test has no examples; accuracy is measured on them")
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise TicketError(f"{path}: y_train holds only class {classes[0] if len(classes) else '(none)'}; "
                          f"a classifier needs at least 2 classes")
    if y_test.max() > classes.max():
        raise TicketError(f"{path}: y_test has label {int(y_test.max())}, which no training example has")
    if len(classes) != classes.max() + 1:  # the output layer has max + 1 units: a stray label would size it
        absent = sorted(set(range(int(classes.max()) + 1)) - set(classes.tolist()))
        raise TicketError(f"{path}: y_train's labels must be 0 … K−1 with every class present; "
                          f"{len(absent)} of 0 … {int(classes.max())} have no example (e.g. {absent[0]})")
    return arrays


def check_content(path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    """Inputs of a shape training reads, finite; labels a 1-D integer array of class indices 0, 1, ..."""
    if not readable_inputs(x):
        raise TicketError(f"{path}: x_{split} must be {INPUT_KINDS}; got {x.dtype} {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        with np.errstate(over="ignore"):  # training is in float32: values beyond its range become inf there
            finite = np.isfinite(x.astype(np.float32))
        if not finite.all():
            bad = int((~finite).any(axis=tuple(range(1, x.ndim))).sum()) if x.ndim > 1 else int((~finite).sum())
            raise TicketError(f"{path}: x_{split} has NaN, infinite or beyond-float32 values in {bad} example(s); "
                              "inputs must be finite in float32")
    if y.ndim != 1:
        raise TicketError(f"{path}: y_{split} must be 1-D (one class index per example); got shape {y.shape}"
                          + (" (flatten it: y.ravel())" if y.ndim == 2 and y.shape[1] == 1 else ""))
    if not np.issubdtype(y.dtype, np.integer):
        raise TicketError(f"{path}: y_{split} must hold integer class indices 0, 1, ...; got {y.dtype} values")
    if len(y) and y.min() < 0:
        raise TicketError(f"{path}: y_{split} has label {int(y.min())}; class indices start at 0")


INPUT_KINDS = "uint8 images N×H×W(×C) or float N×D"


def readable_inputs(x: np.ndarray) -> bool:
    """Inputs of a kind `as_float_inputs` converts."""
    return (x.dtype == np.uint8 and x.ndim in (3, 4)) or (np.issubdtype(x.dtype, np.floating) and x.ndim == 2)


def as_float_inputs(x: np.ndarray) -> torch.Tensor:
    """uint8 images N×H×W(×C) → float N×C×H×W in [0, 1]; float N×D stays N×D."""
    if not readable_inputs(x):
        raise TicketError(f"inputs must be {INPUT_KINDS}; got {x.dtype} {x.shape}")
    if x.dtype != np.uint8:
        return torch.from_numpy(x).float()
    x = torch.from_numpy(x).float() / 255
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def split_and_normalise(x_train, y_train, x_test, y_test, val_size: int, input_norm: str = "standardize") -> Data:
    x_train, x_test = as_float_inputs(x_train), as_float_inputs(x_test)
    y_train, y_test = (torch.as_tensor(np.asarray(y), dtype=torch.long) for y in (y_train, y_test))
    if not 0 <= val_size < len(y_train):
        raise TicketError(f"val_size must be in [0, {len(y_train)}) for this dataset; got {val_size}")
    order = torch.randperm(len(y_train), generator=generator("validation-split"))
    val, train = order[:val_size], order[val_size:]
    x_val, y_val, x_train, y_train = x_train[val], y_train[val], x_train[train], y_train[train]
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    if input_norm == "none":
        return Data(x_train, y_train, x_val, y_val, x_test, y_test, num_classes)
    dims = (0, 2, 3) if x_train.ndim == 4 else (0, 1)  # per channel for images, one scalar otherwise
    # numpy in float64: torch's reductions change their summation order with the thread count
    values = x_train.numpy().astype(np.float64)
    mean = torch.from_numpy(values.mean(dims, keepdims=True)).float()
    std = torch.from_numpy(values.std(dims, ddof=1, keepdims=True)).float().clamp_min(1e-8)
    norm = lambda x: (x - mean) / std  # noqa: E731
    return Data(norm(x_train), y_train, norm(x_val), y_val, norm(x_test), y_test, num_classes)
