"""Content-addressed run store.

    <store>/<run_id>/config.json              the run's full config (run_id = hash of it)
    <store>/<run_id>/round_003/metrics.json   evaluation rows, weights remaining, diverged flag
    <store>/<run_id>/round_003/mask.pt        the mask this round trained with
    <store>/<run_id>/round_003/weights.pt     the trained weights at the end of the round
    <store>/<run_id>/round_000/rewind.pt      weights at the rewind iteration (late rewinding)

A round folder is written under a temporary name and renamed into place when every file is on
disk, so a round folder that exists is complete and is never recomputed.
"""
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .protocols import UNHASHED


def hashed_part(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in UNHASHED}


def run_id(config: dict) -> str:
    canonical = json.dumps(hashed_part(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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

    def metrics(self, r: int) -> dict:
        return json.loads((self.round_path(r) / "metrics.json").read_text())

    def tensors(self, r: int, name: str) -> dict[str, torch.Tensor]:
        return torch.load(self.round_path(r) / f"{name}.pt", weights_only=True)

    def save_round(self, r: int, metrics: dict, tensors: dict[str, dict]) -> None:
        """Write all of a round's files, then make them visible in one rename."""
        tmp = Path(tempfile.mkdtemp(prefix=f".round_{r:03d}.", dir=self.path))
        metrics = {**metrics, "rows": [_finite_or_none(row) for row in metrics["rows"]]}
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
        for name, values in tensors.items():
            torch.save({k: v.detach().cpu() for k, v in values.items()}, tmp / f"{name}.pt")
        try:
            tmp.rename(self.round_path(r))
        except OSError:  # another process finished this round first; keep theirs
            shutil.rmtree(tmp)


class Store:
    def __init__(self, root: str | Path = "data/runs"):
        self.root = Path(root)

    def run(self, config: dict) -> Run:
        """The run's folder, created with its config.json if new."""
        path = self.root / run_id(config)
        config_file = path / "config.json"
        if not config_file.exists():
            path.mkdir(parents=True, exist_ok=True)
            tmp = path / f".config.{os.getpid()}.json"
            tmp.write_text(json.dumps(hashed_part(config), indent=1, sort_keys=True))
            tmp.replace(config_file)
        return Run(path, json.loads(config_file.read_text()))

    def has_round(self, config: dict, r: int) -> bool:
        """Whether the run of `config` finished round r (creates nothing)."""
        return Run(self.root / run_id(config), config).has_round(r)

    def runs(self) -> list[Run]:
        return [Run(p.parent, json.loads(p.read_text())) for p in sorted(self.root.glob("*/config.json"))]
