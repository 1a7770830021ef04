"""Content-addressed run store.

    <store>/<run_id>/config.json              the run's full config (run_id = hash of it)
    <store>/<run_id>/round_003/metrics.json   evaluation rows, weights remaining, diverged flag
    <store>/<run_id>/round_003/mask.pt        the mask this round trained with
    <store>/<run_id>/round_003/weights.pt     the trained weights at the end of the round
    <store>/<run_id>/round_000/rewind.pt      weights at the rewind iteration (late rewinding)
    <store>/<run_id>/round_003/sha256.json    checksums of the round's other files, written last

Crash safety: a round folder is written under a temporary name, its files flushed to disk
(fsync), and renamed into place in one step, so a round folder that exists is complete; a killed
run resumes at its first missing round. Rounds are write-once: when two processes finish the
same round, the first rename wins and the other's copy is dropped, so concurrent grids on one
store cannot corrupt it. Every read checks the file against its checksum; a damaged file raises
CorruptStore naming it, never silently read. Tensors load with torch.load(weights_only=True).
"""
import hashlib
import io
import json
import math
import shutil
import tempfile
from pathlib import Path

import torch

from ticketlib.config import hashed_part, run_id
from ticketlib.errors import TicketError
from ticketlib.store.files import sync_folder, write_atomically, write_synced

CHECKSUMS = "sha256.json"


class CorruptStore(TicketError):
    """A store file is unreadable or differs from its checksum."""


def corrupt(path: Path, problem: str) -> CorruptStore:
    return CorruptStore(f"{path} {problem}; delete {path.parent} to recompute it")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _finite_or_none(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


class Run:
    def __init__(self, path: Path, config: dict):
        self.path, self.config = path, config

    def round_path(self, r: int) -> Path:
        return self.path / f"round_{r:03d}"

    def has_round(self, r: int) -> bool:
        return self.round_path(r).is_dir()

    def rounds(self) -> list[int]:
        return sorted(int(p.name[6:]) for p in self.path.glob("round_[0-9][0-9][0-9]"))

    def read(self, r: int, name: str) -> bytes:
        """A round file's bytes, checked against the round's checksums."""
        folder = self.round_path(r)
        try:
            sums = json.loads((folder / CHECKSUMS).read_text())
            expected = sums[name]
        except (OSError, ValueError, KeyError, TypeError):
            raise corrupt(folder / CHECKSUMS, f"is missing or unreadable (or lacks {name})") from None
        try:
            data = (folder / name).read_bytes()
        except OSError as error:
            raise corrupt(folder / name, f"cannot be read ({error.strerror})") from None
        if sha256(data) != expected:
            raise corrupt(folder / name, "does not match its checksum (damaged or truncated)")
        return data

    def metrics(self, r: int) -> dict:
        return json.loads(self.read(r, "metrics.json"))

    def tensors(self, r: int, name: str) -> dict[str, torch.Tensor]:
        return torch.load(io.BytesIO(self.read(r, f"{name}.pt")), weights_only=True)

    def save_round(self, r: int, metrics: dict, tensors: dict[str, dict]) -> None:
        """Write all of a round's files, flush them to disk, then make them visible in one rename."""
        tmp = Path(tempfile.mkdtemp(prefix=f".round_{r:03d}.", dir=self.path))
        metrics = {**metrics, "rows": [_finite_or_none(row) for row in metrics["rows"]]}
        files = {"metrics.json": json.dumps(metrics, indent=1).encode()}
        for name, values in tensors.items():
            buffer = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in values.items()}, buffer)
            files[f"{name}.pt"] = buffer.getvalue()
        files[CHECKSUMS] = json.dumps({name: sha256(data) for name, data in files.items()}).encode()
        for name, data in files.items():  # the checksums last: present means all are written
            write_synced(tmp / name, data)
        sync_folder(tmp)
        try:
            tmp.rename(self.round_path(r))
        except OSError:  # another process finished this round first; keep theirs (write-once)
            shutil.rmtree(tmp)
            return
        sync_folder(self.path)


class Store:
    def __init__(self, root: str | Path = "data/runs"):
        self.root = Path(root)

    def run(self, config: dict) -> Run:
        """The run's folder, created with its config.json if new."""
        path = self.root / run_id(config)
        config_file = path / "config.json"
        if not config_file.exists():
            path.mkdir(parents=True, exist_ok=True)
            write_atomically(config_file, json.dumps(hashed_part(config), indent=1, sort_keys=True).encode())
        return Run(path, read_config(config_file))

    def find(self, config: dict) -> Run | None:
        """The run of `config` if the store has it, else None; creates nothing (for reading)."""
        config_file = self.root / run_id(config) / "config.json"
        return Run(config_file.parent, read_config(config_file)) if config_file.exists() else None

    def has_round(self, config: dict, r: int) -> bool:
        """Whether the run of `config` finished round r (creates nothing)."""
        return Run(self.root / run_id(config), config).has_round(r)

    def runs(self) -> list[Run]:
        return [Run(p.parent, read_config(p)) for p in sorted(self.root.glob("*/config.json"))]


def read_config(path: Path) -> dict:
    """A run's config, which must hash to its folder's name."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise corrupt(path, f"is unreadable ({error})") from None
    if not isinstance(config, dict) or run_id(config) != path.parent.name:
        raise corrupt(path, "does not hash to its folder's name (edited or damaged)")
    return config
