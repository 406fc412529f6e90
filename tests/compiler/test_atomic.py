"""Atomic output keeps the old file on failure and gives files the default permissions."""

import os
import stat

import pytest
from pseudosnn.compiler import artifact
from pseudosnn.compiler.atomic import write_atomic, write_atomic_with
from pseudosnn.compiler.testing import random_graph


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_and_artifacts_are_readable_like_plain_files(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "sub" / "a.json", "{}")
        assert path.read_text() == "{}" and mode(path) == 0o644
        art = artifact.save(random_graph("mlp"), tmp_path / "art")
        assert mode(art) == 0o755
        assert all(mode(p) == 0o644 for p in art.iterdir())
    finally:
        os.umask(old)


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_atomic(tmp_path / "r.csv", b"old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic_with(path, fail)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["r.csv"]
