"""Durable writes: a file is flushed to disk before it appears under its name, so whatever a
reader finds under that name is whole (the run store's files, cached datasets)."""
import os
from pathlib import Path


def write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def sync_folder(path: Path) -> None:
    """Make a rename or a new file in `path` durable (directory entries are data too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write under a temporary name in the same folder (this process's own), then rename into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_synced(tmp, data)
        tmp.replace(path)
        sync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
