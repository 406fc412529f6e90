"""Bad NIR input and bad NIR export requests, one row per case: real files written here, the
real CLI, the exit code (2 for a usage mistake, 1 for a file or mapping that cannot work),
one ``Error:`` line naming the file or node and the fix, and never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pseudosnn.cli import main

nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")


def _lif(n, tau=1e-3, dt=1e-4, **kw):
    tau = np.full(n, tau) if np.ndim(tau) == 0 else np.asarray(tau)
    args = dict(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=np.ones(n),
                v_reset=np.zeros(n))
    return nir.LIF(**{**args, **kw})


def _graph(middle: dict, edges: list, n_in=3, n_out=2, **kw):
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "output": nir.Output(output_type={"output": np.array([n_out])}), **middle}
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False, **kw)


def _fc(n_out=2, n_in=3):
    return nir.Affine(weight=np.full((n_out, n_in), 0.5), bias=np.zeros(n_out))


CHAIN = [("input", "fc"), ("fc", "lif"), ("lif", "output")]


def _files(root: Path) -> None:
    good = _graph({"fc": _fc(), "lif": _lif(2)}, CHAIN)
    nir.write(root / "good.nir", good)
    data = (root / "good.nir").read_bytes()
    (root / "truncated.nir").write_bytes(data[:len(data) // 2])
    (root / "random.nir").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "text.nir").write_text("not a graph\n")
    (root / "empty.nir").write_bytes(b"")
    with h5py.File(root / "other.nir", "w") as f:
        f.create_dataset("x", data=np.arange(3))
    nir.write(root / "cycle.nir", _graph(
        {"fc": _fc(), "lif": _lif(2), "rec": nir.Linear(weight=np.eye(2))},
        [*CHAIN, ("lif", "rec"), ("rec", "lif")]))
    inner = _graph({"fc": _fc(2, 2), "lif": _lif(2)}, CHAIN, n_in=2)
    nir.write(root / "subgraph.nir", _graph({"fc": _fc(), "sub": inner},
                                            [("input", "fc"), ("fc", "sub"), ("sub", "output")]))
    nir.write(root / "unknown.nir", good)
    with h5py.File(root / "unknown.nir", "r+") as f:
        del f["node/nodes/lif/type"]
        f["node/nodes/lif"].create_dataset("type", data="Spiky", dtype=h5py.string_dtype())
    nir.write(root / "tau_varies.nir", _graph({"fc": _fc(), "lif": _lif(2, tau=[1e-3, 2e-3])},
                                              CHAIN))
    nir.write(root / "unstable.nir", _graph({"fc": _fc(), "lif": _lif(2, tau=1e-5)}, CHAIN))
    nir.write(root / "reset_fires.nir", _graph(
        {"fc": _fc(), "lif": _lif(2, v_reset=np.full(2, 2.0))}, CHAIN))
    nir.write(root / "delay.nir", _graph(
        {"fc": _fc(), "d": nir.Delay(delay=np.full(2, 2e-4)), "lif": _lif(2)},
        [("input", "fc"), ("fc", "d"), ("d", "lif"), ("lif", "output")]))
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1,
                      dilation=1, groups=1, bias=np.zeros(2))
    lif = _lif((2, 4, 4), tau=np.full((2, 4, 4), 1e-3), v_leak=np.zeros((2, 4, 4)),
               v_threshold=np.ones((2, 4, 4)), v_reset=np.zeros((2, 4, 4)))
    nir.write(root / "partial_flatten.nir", nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1, 4, 4])}), "conv": conv,
        "lif": lif, "flat": nir.Flatten(input_type={"input": np.array([2, 4, 4])},
                                        start_dim=1, end_dim=2),
        "output": nir.Output(output_type={"output": np.array([2, 16])})},
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "output")],
        type_check=False))
    nir.write(root / "li_inside.nir", _graph(
        {"fc": _fc(), "li": nir.LI(tau=np.full(2, 1e-3), r=np.full(2, 10.0),
                                   v_leak=np.zeros(2)),
         "fc2": _fc(2, 2), "lif": _lif(2)},
        [("input", "fc"), ("fc", "li"), ("li", "fc2"), ("fc2", "lif"), ("lif", "output")]))


def _artifacts(root: Path) -> None:
    """A float and a fixed-point artifact of a rate (PseudoSN) network, an exact stream
    one, and an export of ours whose weights another tool then edited."""
    from pseudosnn.backends.nir_backend import export, to_bytes
    from pseudosnn.compiler.artifact import save
    from pseudosnn.compiler.quantize import quantize
    from pseudosnn.compiler.testing import random_graph

    rate = random_graph("mlp", seed=0)
    save(rate, root / "build" / "rate")
    save(quantize(rate)[0], root / "build" / "fixed")
    (root / "ours.nir").write_bytes(to_bytes(export(rate)))
    with h5py.File(root / "ours.nir", "r+") as f:
        key = next(k for k in f["node/nodes"] if "weight" in f[f"node/nodes/{k}"])
        f[f"node/nodes/{key}/weight"][0, 0] += 1.0


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("nir-probe")
    _files(root)
    _artifacts(root)
    return root


@dataclass
class Case:
    id: str
    argv: list
    code: int
    needles: tuple[str, ...] = ()
    check: Callable[[Path], bool] | None = None


C, X = "compile", "export"
SNN = ["--from", "snntorch", "--timesteps", "5"]
CASES = [
    *[Case(f"file-{name}", [C, f"{name}.nir", "-o", "o", *SNN], 1, needles)
      for name, needles in [
          ("truncated", ("truncated.nir is not a NIR file: HDF5 cannot open it",)),
          ("random", ("random.nir is not a NIR file",)),
          ("text", ("text.nir is not a NIR file",)),
          ("empty", ("empty.nir is not a NIR file",)),
          ("other", ("other.nir is an HDF5 file but not a NIR graph",)),
          ("cycle", ("has a cycle", "recurrence is not supported yet")),
          ("subgraph", ("node 'sub' is a subgraph", "recurrence is not supported yet")),
          ("unknown", ("node 'lif' has type 'Spiky'", "not a NIR node this importer knows")),
          ("tau_varies", ("node 'lif' (LIF): tau differs across neurons",)),
          ("reset_fires", ("node 'lif' (LIF): hard-reset value v_reset=2",)),
          ("delay", ("node 'd' (Delay): a delay of 2 steps", "only zero delays")),
          ("partial_flatten", ("node 'flat' (Flatten): flattening axes 1..2",)),
          ("li_inside", ("node 'li' (LI): a non-spiking node must feed only the Output",)),
      ]],
    Case("unstable-euler", [C, "unstable.nir", "-o", "o", *SNN], 1,
         ("node 'lif' (LIF): tau = 1e-05 with dt = 0.0001 decays by 10", "is --dt right?")),
    Case("missing-from", [C, "good.nir", "-o", "o"], 2,
         ("good.nir does not say which library wrote it", "--from nir|snntorch|norse")),
    Case("missing-dt", [C, "good.nir", "-o", "o", "--from", "norse", "--timesteps", "5"], 2,
         ("node 'lif' (LIF) has time constants and NIR stores no time step: give --dt",)),
    Case("missing-timesteps", [C, "good.nir", "-o", "o", "--from", "snntorch"], 2,
         ("give --timesteps N",)),
    Case("dt-against-the-library", [C, "good.nir", "-o", "o", *SNN, "--dt", "1e-3"], 2,
         ("snnTorch 1.0.0 fixes dt = 0.0001; --dt 0.001 would not reproduce",)),
    Case("dt-negative", [C, "good.nir", "-o", "o", *SNN, "--dt", "-1"], 2,
         ("Invalid value for '--dt'",)),
    Case("nir-options-on-a-checkpoint", [C, "build/rate", "-o", "o", *SNN], 2,
         ("--from, --dt and --timesteps read NIR files",)),
    Case("extension-edited-by-another-tool", [C, "ours.nir", "-o", "o"], 1,
         ("the NIR nodes were changed after pseudosnn exported them", "--from nir --dt")),
    Case("good-file-compiles", [C, "good.nir", "-o", "o", *SNN], 0, ("wrote o",),
         lambda root: (root / "o" / "manifest.json").is_file()),
    Case("export-fixed-point", [X, "build/fixed", "-o", "f.nir"], 1,
         ("export the float artifact",), lambda root: not (root / "f.nir").exists()),
    Case("export-lossy-refused", [X, "build/rate", "-o", "r.nir"], 2,
         ("plain NIR readers would compute another network", "resets by subtraction",
          "pass --lossy"), lambda root: not (root / "r.nir").exists()),
    Case("export-into-the-artifact", [X, "build/rate", "-o", "build/rate/m.nir"], 2,
         ("is inside the input build/rate",)),
    Case("export-existing-file", [X, "build/rate", "-o", "good.nir", "--lossy"], 2,
         ("good.nir exists; pass --force",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_nir_input(case: Case, probe: Path, monkeypatch):
    monkeypatch.chdir(probe)
    res = CliRunner().invoke(main, [str(a) for a in case.argv])
    assert res.exit_code == case.code, res.output
    assert "Traceback" not in res.output
    if case.code:
        assert isinstance(res.exception, SystemExit), repr(res.exception)
        assert len([x for x in res.output.splitlines() if x.startswith("Error:")]) == 1, \
            res.output
    for needle in case.needles:
        assert needle in res.output, res.output
    if case.check:
        assert case.check(probe)
