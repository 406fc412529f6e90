"""Atomic output, the toolchain's one way of writing files a user keeps (checkpoints,
artifacts, reports, plots): write a temporary sibling, fsync, then ``os.replace`` it into
place, so a reader sees the old file or the new one, never half of one. Files and
directories get the permissions a plain ``open``/``mkdir`` would give (``mkstemp`` and
``mkdtemp`` create them private to the owner).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_public(path: str | os.PathLike, directory: bool = False) -> None:
    """Give ``path`` the default mode: ``0o666`` (files) or ``0o777`` (dirs) minus umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def write_atomic_with(path: str | os.PathLike, writer: Callable[[BinaryIO], None]) -> Path:
    """Call ``writer(binary_file)`` on a temporary sibling and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        make_public(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    raw = data.encode() if isinstance(data, str) else data
    return write_atomic_with(path, lambda f: f.write(raw))


def temporary_sibling_dir(path: str | os.PathLike) -> Path:
    """A new empty directory beside ``path`` (same file system, so it can be renamed
    into place), with default permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    make_public(tmp, directory=True)
    return tmp
