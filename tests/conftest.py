"""Shared fixtures. Lava tests need the Lava venv (Python 3.10 + lava-nc): under CI
(``CI`` set) or with ``PSEUDOSNN_REQUIRE_LAVA=1`` a missing venv fails the run instead of
skipping it; so does a missing optional library (``pytest.importorskip``: Ray, NIR,
snnTorch, Norse, SpikingJelly, sinabs), which ``make venv`` installs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lava_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("PSEUDOSNN_REQUIRE_LAVA") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI an ``importorskip`` of a missing library fails instead of skipping."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _lava_required() and "could not import" in str(report.longrepr):
        report.outcome = "failed"


@pytest.fixture(scope="session")
def lava_python() -> str:
    """Path of the Lava venv's Python, checked to import lava."""
    path = os.environ.get("PSEUDOSNN_LAVA_PYTHON") or str(REPO / ".venv-lava" / "bin" / "python")
    problem = None
    if not Path(path).exists():
        problem = f"Lava venv not found at {path}; create it with `make lava-venv`"
    else:
        proc = subprocess.run([path, "-c", "import lava.magma"], capture_output=True, text=True)
        if proc.returncode != 0:
            problem = f"{path} cannot import lava: {proc.stderr.strip()[-500:]}"
    if problem:
        if _lava_required():
            pytest.fail(problem + " (Lava tests are required in CI)", pytrace=False)
        pytest.skip(problem)
    return path
