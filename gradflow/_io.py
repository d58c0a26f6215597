"""Atomic writes: a file is written beside its target, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | Path, write) -> Path:
    """Call `write(tmp_path)` to produce the file, then rename it to `path` atomically.

    A crash part-way leaves either the old file or none, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_netcdf(ds, path) -> Path:
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4"))


def write_text(text: str, path) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
