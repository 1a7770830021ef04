"""What notebooks write for the paper, each artefact recorded with the grids it came from.

    out = Outputs([grid], publish)       grid: a results.GridResults (none for artefacts of no run)
    out.figure(fig, name)                figures/NAME.png and .pdf
    out.table(table, name)               paper/generated/NAME.md and .csv
    out.values({key: value})             paper/generated/values.json

Published artefacts (`publish=True`: the study's parameter files) go to figures/ and
paper/generated/, and each is recorded in paper/generated/manifest.json with its grids'
identities (name, grid hash, table checksum). Exploratory ones (a notebook's defaults) go under
build/exploratory/, never over the study's. `make study` starts a fresh manifest; the paper build
(paper/build.py) refuses an input the manifest lacks, an input whose grid's results changed since
it was made, a section that mixes grids it does not declare, and a table, value file or figure
whose bytes differ from those the notebooks wrote (CHECKSUMS: a hand edit shows).
"""
import fcntl
import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

from ticketlib.analysis.report import markdown_table

PUBLISHED = {"figures": "figures", "tables": "paper/generated"}
EXPLORATORY = {"figures": "build/exploratory/figures", "tables": "build/exploratory/generated"}
MANIFEST = "manifest.json"
CHECKSUMS = "checksums.json"  # beside the manifest: SHA-256 of every file written, by name


def identity(grid) -> dict:
    """The part of a grid's identity that decides whether an artefact is current."""
    return {k: grid.identity[k] for k in ("grid", "grid_hash", "table_sha256")}


class Outputs:
    """Writes a notebook's figures, tables and values, and records where each came from."""

    def __init__(self, grids=(), publish: bool = False, root: str | Path = ".."):
        folders = PUBLISHED if publish else EXPLORATORY
        self.figures, self.tables = (Path(root) / folders[k] for k in ("figures", "tables"))
        self.sources = [identity(g) for g in grids]

    def figure(self, fig, name: str) -> Path:
        self.record({f"figure:{name}"})
        from ticketlib.analysis.figures import save  # only figures need matplotlib
        path = save(fig, name, self.figures)
        self.checksum(path, path.with_suffix(".pdf"))
        return path

    def table(self, table, name: str) -> Path:
        self.tables.mkdir(parents=True, exist_ok=True)
        table.to_csv(self.tables / f"{name}.csv", index=False)
        (self.tables / f"{name}.md").write_text(markdown_table(table))
        self.record({f"table:{name}"})
        self.checksum(self.tables / f"{name}.md")
        return self.tables / f"{name}.md"

    def values(self, values: dict) -> Path:
        """Merge numbers the paper quotes into values.json (each notebook adds its own)."""
        path = self.tables / "values.json"
        with locked(self.tables):
            merged = {**(json.loads(path.read_text()) if path.is_file() else {}), **values}
            write_json(path, merged)
        self.record({f"value:{key}" for key in values})
        self.checksum(path)
        return path

    def record(self, keys: set) -> None:
        with locked(self.tables):
            path = self.tables / MANIFEST
            manifest = json.loads(path.read_text()) if path.is_file() else {}
            write_json(path, {**manifest, **{key: self.sources for key in keys}})


    def checksum(self, *paths: Path) -> None:
        with locked(self.tables):
            path = self.tables / CHECKSUMS
            sums = json.loads(path.read_text()) if path.is_file() else {}
            write_json(path, {**sums, **{p.name: sha256(p) for p in paths}})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed_files(paths, checksums: dict) -> list[str]:
    """Those of `paths` whose bytes are not what the notebooks wrote (or that they never wrote)."""
    return [str(p) for p in paths if p.is_file() and checksums.get(p.name) != sha256(p)]


@contextmanager
def locked(folder: Path):
    """One writer at a time: notebooks run side by side must not drop each other's keys."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
