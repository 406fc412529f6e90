"""Fault injection: every writer of user outputs (artifact, checkpoint, report/result
files) is SIGKILLed while it rewrites its output, at random moments and at every file
system step it takes; what is left must be exactly the old or the new output, never a
mix or nothing, and the temporaries of the killed writers must go with the next write."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pseudosnn.compiler import artifact, atomic
from pseudosnn.compiler.testing import random_graph

RANDOM_TRIALS = 20
STEPS = [(os, "rename"), (os, "replace"), (os, "fsync"), (os, "chmod"), (os, "unlink"),
         (shutil, "rmtree"), (tempfile, "mkstemp"), (tempfile, "mkdtemp"),
         (atomic, "_exchange")]
"""The file system steps of the writers; a kill lands just before the k-th of them."""


@dataclass
class Writer:
    out: Path
    write: Callable[[int], None]  # write version 0 or 1
    check: Callable[[], None]  # what is at ``out`` is one whole version


def _artifact(tmp_path) -> Writer:
    graphs = [random_graph("cnn", seed=1), random_graph("cnn", seed=2)]
    out = tmp_path / "art"
    versions = []
    for g in graphs:
        artifact.save(g, out)
        versions.append((out / artifact.GRAPH).read_text())
    assert versions[0] != versions[1]

    def check():
        artifact.load(out)  # every hash matches: no file of the other version slipped in
        assert (out / artifact.GRAPH).read_text() in versions
        assert set(json.loads((out / artifact.MANIFEST).read_text())["files"]) == \
            {artifact.GRAPH, artifact.WEIGHTS}

    return Writer(out, lambda i: artifact.save(graphs[i], out), check)


def _checkpoint(tmp_path) -> Writer:
    torch = pytest.importorskip("torch")
    from pseudosnn.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
    from pseudosnn.models import build_model

    ckpts = []
    for epoch in (1, 2):
        torch.manual_seed(epoch)
        model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                            neuron={"family": "pseudo"})
        ckpts.append(make_checkpoint(model, epoch=epoch))
    out = tmp_path / "last.pth"
    save_checkpoint(ckpts[1], out)

    def check():
        got = load_checkpoint(out)
        want = ckpts[got["epoch"] - 1]
        assert all(torch.equal(v, want["state_dict"][k]) for k, v in got["state_dict"].items())

    return Writer(out, lambda i: save_checkpoint(ckpts[i], out), check)


def _report(tmp_path) -> Writer:
    """Reports and results (JSON, CSV, npz, plots) all go through ``write_atomic``."""
    payloads = [b"a" * (4 << 20), b"b" * (4 << 20) + b"\n"]
    out = tmp_path / "report.json"
    atomic.write_atomic(out, payloads[1])
    return Writer(out, lambda i: atomic.write_atomic(out, payloads[i]),
                  lambda: _assert_in(out.read_bytes(), payloads))


def _assert_in(value, allowed):
    assert value in allowed


WRITERS = {"artifact": _artifact, "checkpoint": _checkpoint, "report": _report}


def _temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def _rewrite_forever(write) -> None:
    i = 0
    while True:
        write(i % 2)
        i += 1


def _write_killed_at_step(write, k: int) -> None:
    """Write version 0, SIGKILLing this process just before its ``k``-th file system
    step; exit 0 if the write takes fewer steps."""
    count = [0]

    def counted(real):
        def step(*args, **kwargs):
            count[0] += 1
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return step

    for module, name in STEPS:
        setattr(module, name, counted(getattr(module, name)))
    write(0)
    os._exit(0)


def _killed(target, args) -> None:
    child = multiprocessing.get_context("fork").Process(target=target, args=args, daemon=True)
    child.start()
    return child


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_sigkill_at_every_step_leaves_old_or_new(kind, tmp_path):
    w = WRITERS[kind](tmp_path)
    k = 0
    while True:
        k += 1
        child = _killed(_write_killed_at_step, (w.write, k))
        child.join()
        w.check()
        if child.exitcode == 0:
            break
        assert child.exitcode == -signal.SIGKILL
    assert k > 3, f"the {kind} writer took only {k - 1} steps: the patch missed them"
    w.write(1)
    w.check()
    assert _temporaries(w.out) == []


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_sigkill_at_random_moments_leaves_old_or_new(kind, tmp_path):
    w = WRITERS[kind](tmp_path)
    rng = random.Random(kind)
    mid_write = 0
    for _ in range(RANDOM_TRIALS):
        child = _killed(_rewrite_forever, (w.write,))
        time.sleep(rng.uniform(0.02, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL, "the writer died before it was killed"
        w.check()
        mid_write += bool(_temporaries(w.out))
    assert mid_write > 0, "no kill landed inside a write: the test tested nothing"
    w.write(0)
    assert _temporaries(w.out) == []


def test_directories_are_swapped_in_one_step_here(tmp_path):
    """The atomic directory swap is available on the file system the tests run on (a
    broken binding would silently fall back to two renames)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    assert atomic._exchange(a, b)
    assert (b / "x").read_text() == "a" and not (a / "x").exists()
