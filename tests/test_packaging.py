"""Packaging and dependency-direction checks (DESIGN.md §3)."""

from __future__ import annotations

import os
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
    assert "pseudosnn.compiler.spiking.graph" in modules
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *modules],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _build_wheel(out: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("pseudosnn-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_installs_everything_under_one_namespace(tmp_path):
    names = zipfile.ZipFile(_build_wheel(tmp_path)).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"pseudosnn"}, f"generic top-level names would land in site-packages: {top}"
    for folder in ("pseudosnn", *TORCH_FREE):  # every module of every folder, no symlinks
        for path in (REPO / folder).rglob("*.py"):
            assert not path.is_symlink(), path
            rel = path.relative_to(REPO / folder).as_posix()
            installed = f"pseudosnn/{rel}" if folder == "pseudosnn" else f"pseudosnn/{folder}/{rel}"
            assert installed in names, f"{installed} missing from the wheel"


@pytest.mark.slow
def test_non_editable_install_runs_the_cli(tmp_path, lava_python):
    """``pip install`` of the wheel into a throwaway venv (dependencies borrowed from this
    environment by a path entry, the source tree out of reach): --help, compile, simulate,
    and a Lava run whose interpreter comes from $PSEUDOSNN_LAVA_PYTHON."""
    import sysconfig

    wheel = _build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.check_output(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PSEUDOSNN_LAVA_PYTHON"}

    def cli(*args, lava: str | None = None):
        return subprocess.run([venv / "bin" / "python", "-m", "pseudosnn.cli", *map(str, args)],
                              cwd=work, capture_output=True, text=True,
                              env={**env, **({"PSEUDOSNN_LAVA_PYTHON": lava} if lava else {})})

    where = subprocess.check_output([venv / "bin" / "python", "-c",
                                     "import pseudosnn.compiler.spiking.graph as g; "
                                     "print(g.__file__)"], cwd=work, text=True)
    assert where.startswith(str(site)), where  # the installed copy, not the source tree
    assert cli("--help").returncode == 0
    ckpt = _digits_mlp_checkpoint(work / "mlp.pth")
    res = cli("compile", ckpt, "-o", work / "art", "--target", "lava")
    assert res.returncode == 0, res.stderr[-2000:]
    res = cli("simulate", work / "art", "--data", "digits", "--limit", "8", "--quiet")
    assert res.returncode == 0 and "encoder MACs" in res.stdout, res.stderr[-2000:]
    res = cli("run", work / "art", "--target", "lava", "--samples", "2")
    assert res.returncode == 1 and "no Lava venv found" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    res = cli("run", work / "art", "--target", "lava", "--samples", "2", "--check",
              lava=lava_python)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "'counts_equal': True" in res.stdout


def _digits_mlp_checkpoint(path: Path) -> Path:
    """An untrained digits MLP checkpoint (the layout `pseudosnn train` writes)."""
    import torch

    from pseudosnn.checkpoint import make_checkpoint, save_checkpoint
    from pseudosnn.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp_digits", num_classes=10, input_shape=(64,),
                        neuron={"family": "pseudo"})
    save_checkpoint(make_checkpoint(model, epoch=1), path)
    return path


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
