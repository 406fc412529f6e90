"""Atomic output, the toolchain's one way of writing files a user keeps (checkpoints,
artifacts, reports, plots): write a temporary sibling, fsync, then ``os.replace`` it into
place, so a reader sees the old file or the new one, never half of one. A directory is
swapped into place in one step (Linux ``renameat2(RENAME_EXCHANGE)``). Files and
directories get the permissions a plain ``open``/``mkdir`` would give (``mkstemp`` and
``mkdtemp`` create them private to the owner).

Temporaries are hidden siblings named ``.NAME.pid<PID>.<8 random chars>`` (``.tmp`` for
files). A writer killed before its rename leaves one behind; the next write of the same
output removes those whose process is gone.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from pseudosnn.errors import UsageError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
"""``renameat2`` flag (linux/fs.h): swap two paths atomically."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_public(path: str | os.PathLike, directory: bool = False) -> None:
    """Give ``path`` the default mode: ``0o666`` (files) or ``0o777`` (dirs) minus umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.pid{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` whose writer process no longer exists (killed
    before its rename); returns what was deleted."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.pid(\d+)\.[A-Za-z0-9_]{{8}}(\.tmp)?")
    try:
        entries = list(os.scandir(path.parent))
    except (FileNotFoundError, NotADirectoryError):
        return []
    stale = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and int(match[1]) != os.getpid() and not _alive(int(match[1])):
            _remove(Path(entry.path))
            stale.append(Path(entry.path))
    return stale


def write_atomic_with(path: str | os.PathLike, writer: Callable[[BinaryIO], None]) -> Path:
    """Call ``writer(binary_file)`` on a temporary sibling and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
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
    into place), with default permissions; stale ones of killed writers are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), dir=path.parent))
    make_public(tmp, directory=True)
    return tmp


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step; False where the C library, the kernel or the file
    system cannot (the caller then falls back to two renames)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_dir(new: str | os.PathLike, out: str | os.PathLike) -> None:
    """Put the finished directory ``new`` (from :func:`temporary_sibling_dir`) at ``out``.
    Readers, and a process killed at any point, see the old ``out`` or the new one: an
    existing ``out`` is swapped with ``new`` atomically and then deleted. Where no swap is
    available, ``out`` is renamed aside first (a kill between the two renames then leaves
    ``out`` missing, with both versions kept as hidden temporaries)."""
    new, out = Path(new), Path(out)
    if not os.path.lexists(out):
        os.rename(new, out)
    elif _exchange(new, out):
        _remove(new)  # it now holds the old output
    else:
        aside = Path(tempfile.mkdtemp(prefix=_temp_prefix(out), dir=out.parent))
        os.rename(out, aside / "old")
        os.rename(new, out)
        _remove(aside)


def safe_output_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                 what: str = "the output") -> Path:
    """``out`` as an absolute path, after refusing a place whose replacement would lose
    what the command still needs: a path without a name (``/``), the current folder or a
    folder above it, any of ``inputs``, a folder that holds one, or a path inside an input
    folder."""
    path = Path(os.path.abspath(Path(out).expanduser()))
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    if not path.name:
        raise UsageError(f"{what} {out} names no folder or file; give a path such as "
                         "./artifact")
    if resolved == cwd or resolved in cwd.parents:
        raise UsageError(
            f"{what} {out} is the current folder{'' if resolved == cwd else ' or above it'}: "
            "it would be replaced as a whole. Name a new folder inside it, e.g. ./artifact")
    for given in inputs:
        source = Path(given).expanduser().resolve()
        relation = "is" if source == resolved else "holds" if resolved in source.parents \
            else "is inside" if source.is_dir() and source in resolved.parents else None
        if relation:
            raise UsageError(f"{what} {out} {relation} the input {given}: writing there would "
                             "change or destroy it. Choose another output path")
    return path
