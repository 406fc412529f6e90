"""Atomic file output: write a temporary sibling, fsync, then ``os.replace`` it into place,
so a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    raw = data.encode() if isinstance(data, str) else data
    return write_atomic_with(path, lambda f: f.write(raw))


def write_atomic_with(path: str | os.PathLike, writer: Callable) -> Path:
    """Call ``writer(binary_file)`` on a temporary sibling and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
