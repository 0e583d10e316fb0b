"""Atomic file writes and JSON: how every run, study and report file is written.

A reader (or a process killed mid-write) sees either the old file or the new one,
whole: the bytes go to a temporary file in the same folder, which is renamed over the
target. `durable=True` also fsyncs, so the file survives a power loss — worth it for
checkpoints, not for files rebuilt from them. This module imports nothing of trainlab,
so every layer (engine, store, studies, diagnose) may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` so readers see either the old file or the new one, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, durable: bool = False) -> None:
    """Text variant of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def jsonable(value: Any) -> Any:
    """JSON form of what `json` cannot write itself: tensors and NumPy values, enums,
    paths; anything else as its string."""
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, torch tensors
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def to_json(data: Any, indent: int | None = 2) -> str:
    """`data` as JSON text (tensors, NumPy values, enums and paths included)."""
    return json.dumps(data, indent=indent, default=jsonable)


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> None:
    """Write `data` as JSON, atomically, with a final newline."""
    atomic_write_text(path, to_json(data, indent) + "\n")
