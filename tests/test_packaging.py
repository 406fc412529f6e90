"""Packaging and dependency-direction checks (DESIGN.md §3)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TORCH_FREE = ("compiler", "simulator", "backends")


def torch_free_modules() -> list[str]:
    """Every module under compiler/ (but the torch frontend), simulator/ and backends/."""
    names = []
    for pkg in TORCH_FREE:
        names.append(f"pseudosnn.{pkg}")
        for info in pkgutil.walk_packages([str(REPO / pkg)], prefix=f"pseudosnn.{pkg}."):
            # the compiler's torch frontend and the command that drives it may use torch;
            # backends.lava.* needs lava, so tests/backends import it in the Lava venv
            if info.name.startswith(("pseudosnn.compiler.frontend", "pseudosnn.compiler.command",
                                     "pseudosnn.backends.lava.")):
                continue
            names.append(info.name)
    return names


BLOCK_TORCH = """
import importlib, importlib.abc, sys
class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked: {name}")
sys.meta_path.insert(0, BlockTorch())
for name in sys.argv[1:]:
    importlib.import_module(name)
assert "torch" not in sys.modules
print("imported", len(sys.argv) - 1, "modules without torch")
"""


def test_ir_simulator_and_backends_import_without_torch():
    modules = torch_free_modules()
    assert "pseudosnn.compiler.graph" in modules
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *modules],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_wheel_installs_everything_under_one_namespace(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("pseudosnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"pseudosnn"}, f"generic top-level names would land in site-packages: {top}"
    for sub in ("pseudosnn/compiler/graph.py", "pseudosnn/cli.py",
                "pseudosnn/simulator/__init__.py", "pseudosnn/backends/base.py"):
        assert sub in names, f"{sub} missing from the wheel"


LAYERING = """
import importlib, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
forbidden = sys.argv[1].split(",")
bad = sorted(m for m in sys.modules if m.startswith(tuple(forbidden)))
assert not bad, f"imported {bad}"
"""


def test_dependencies_point_one_way():
    """compiler -> numpy/networkx; simulator -> compiler; backends -> simulator, compiler
    (DESIGN.md §3): the lower layers never import the upper ones."""
    modules = torch_free_modules()
    compiler = [m for m in modules if m.startswith("pseudosnn.compiler")]
    simulator = [m for m in modules if m.startswith("pseudosnn.simulator")]
    for imported, forbidden in ((compiler, "pseudosnn.simulator,pseudosnn.backends"),
                                (simulator, "pseudosnn.backends")):
        proc = subprocess.run([sys.executable, "-c", LAYERING, forbidden, *imported],
                              capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-2000:]
