"""The bad-input probe of issue 16, one row per case: real files written here, the real
CLI (click's runner, or a subprocess where the interpreter matters), the exit code (2 for
a usage mistake, 1 for a failure), the one-line message, and what must survive.

Case ids start with the issue's item number (1-3 data loss, 4-5 silent wrong results,
7 impossible values, 8 hangs, 9 tracebacks, 10 misleading messages; item 6, npz layouts,
belongs to the data loaders' tests); ``nir-`` cases are NIR files in and out (issue 15:
malformed or truncated files, cycles, unknown nodes, unmappable parameters, missing
``--dt``/``--from``/``--timesteps``, exports plain NIR cannot hold).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import nir
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from pseudosnn.compiler import artifact

from pseudosnn.cli import main

torch = pytest.importorskip("torch")

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "digits"
TINY = ["--epochs", "1", "--calib_epochs", "0", "--batch_size", "512", "--progress", "false"]


def _cli(argv, env=None):
    return CliRunner().invoke(main, [str(a) for a in argv], env=env)


def _digest(path: Path) -> str:
    """Content hash of a file or a whole folder (names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _rehash(art: Path) -> None:
    """Edit-then-rehash: what someone who tampers with an artifact on purpose does."""
    man = json.loads((art / "manifest.json").read_text())
    man["files"] = {n: artifact.sha256(art / n) for n in man["files"]}
    (art / "manifest.json").write_text(json.dumps(man))


def _lstm_onnx(path: Path) -> None:
    """A recurrent model as exporters write it: Constant plumbing, then an LSTM."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 1, "N", 16])
    w = numpy_helper.from_array(np.zeros((1, 64, 8), np.float32), "W")
    r = numpy_helper.from_array(np.zeros((1, 64, 16), np.float32), "R")
    nodes = [helper.make_node("Constant", [], ["perm"], name="/lstm/Constant",
                              value=numpy_helper.from_array(np.array([1, 0, 2], np.int64))),
             helper.make_node("Transpose", ["x"], ["xt"], name="/lstm/Transpose", perm=[1, 0, 2]),
             helper.make_node("LSTM", ["xt", "W", "R"], ["y"], name="/lstm/LSTM",
                              hidden_size=16)]
    graph = helper.make_graph(nodes, "lstm", [x], [y], initializer=[w, r])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _onnx_variants(root: Path) -> None:
    good = (root / "build" / "cnn" / "model.onnx").read_bytes()
    rng = np.random.default_rng(0)
    (root / "onnx").mkdir()
    (root / "onnx" / "truncated.onnx").write_bytes(good[:len(good) // 3])
    (root / "onnx" / "random.onnx").write_bytes(rng.bytes(4000))
    (root / "onnx" / "text.onnx").write_text("this is not a model\n")
    (root / "onnx" / "empty.onnx").write_bytes(b"")
    m = onnx.load_from_string(good)
    m.graph.node[0].input[1] = "nowhere"
    onnx.save(m, root / "onnx" / "dangling.onnx")
    m = onnx.load_from_string(good)
    for d in m.graph.input[0].type.tensor_type.shape.dim:
        d.dim_param = "d"
    onnx.save(m, root / "onnx" / "dynamic_shape.onnx")
    m = onnx.load_from_string(good)
    m.graph.input[0].type.tensor_type.ClearField("shape")
    onnx.save(m, root / "onnx" / "no_shape.onnx")
    _lstm_onnx(root / "onnx" / "lstm.onnx")


def _checkpoints(root: Path) -> None:
    from pseudosnn.compiler.frontend.testing import randomize

    from pseudosnn.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
    from pseudosnn.models import build_model

    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "pseudo"})
    randomize(model, seed=5)
    run = root / "runs" / "cnn"
    run.mkdir(parents=True)
    save_checkpoint(make_checkpoint(model, epoch=1, config={"optimizer": "sgd"}), run / "last.pth")
    shutil.copy(run / "last.pth", run / "best.pth")
    (run / "history.json").write_text("[]")
    shutil.copytree(run, root / "runs" / "cnn_copy")
    ckpt = load_checkpoint(run / "last.pth")
    big = {**ckpt, "model": {**ckpt["model"], "neuron": {**ckpt["model"]["neuron"],
                                                         "max_T": 1_000_000}}}
    save_checkpoint(big, root / "big_T.pth")
    sd = {k: v.clone() for k, v in ckpt["state_dict"].items()}
    sd["body.0.0.weight"][0] = float("nan")
    torch.save({**ckpt, "state_dict": sd}, root / "nan_weight.pth")  # as a crash would leave
    (root / "random.pth").write_bytes(np.random.default_rng(1).bytes(4000))


def _data(root: Path) -> None:
    rng = np.random.default_rng(2)
    np.savez(root / "wrong_shape.npz", x=rng.random((5, 3, 4, 4)), y=np.arange(5))
    np.savez(root / "bad_labels.npz", x=rng.random((5, 1, 8, 8)), y=np.array([0, 1, 2, 30, -1]))


def _tampered(root: Path) -> None:
    art = root / "build" / "cnn"
    bad_json = root / "build" / "bad_json"
    shutil.copytree(art, bad_json)
    (bad_json / "graph.json").write_text("{")
    _rehash(bad_json)
    bad_shape = root / "build" / "bad_shape"
    shutil.copytree(art, bad_shape)
    desc = json.loads((bad_shape / "graph.json").read_text())
    desc["populations"][0]["shape"] = [3]
    (bad_shape / "graph.json").write_text(json.dumps(desc))
    _rehash(bad_shape)


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


def _nir_files(root: Path) -> None:
    """Malformed and unmappable NIR files, and one good one."""
    root = root / "nir"
    root.mkdir()
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
    nir.write(root / "input_to_li.nir", _graph(
        {"fc": _fc(), "li": nir.LI(tau=np.full(2, 1e-3), r=np.full(2, 10.0),
                                   v_leak=np.zeros(2))},
        [("input", "fc"), ("fc", "li"), ("li", "output")]))


def _nir_artifacts(root: Path) -> None:
    """A float and a fixed-point artifact of a rate (PseudoSN) network and an export of
    ours whose weights another tool then edited."""
    from pseudosnn.backends.nir_backend import export, to_bytes
    from pseudosnn.compiler.artifact import save
    from pseudosnn.compiler.quantize import quantize
    from pseudosnn.compiler.testing import random_graph

    rate = random_graph("mlp", seed=0)
    save(rate, root / "build" / "nir_rate")
    save(quantize(rate)[0], root / "build" / "nir_fixed")
    (root / "nir" / "ours.nir").write_bytes(to_bytes(export(rate)))
    with h5py.File(root / "nir" / "ours.nir", "r+") as f:
        key = next(k for k in f["node/nodes"] if "weight" in f[f"node/nodes/{k}"])
        f[f"node/nodes/{key}/weight"][0, 0] += 1.0


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A user's folder: checkpoints, a trained run, artifacts and malformed files."""
    from pseudosnn.compiler.command import compile_path

    root = tmp_path_factory.mktemp("probe")
    _checkpoints(root)
    compile_path(root / "runs" / "cnn" / "last.pth", root / "build" / "cnn", target="lava")
    _onnx_variants(root)
    _data(root)
    _tampered(root)
    _nir_files(root)
    _nir_artifacts(root)
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("keep me")
    extra = root / "build" / "with_notes"
    shutil.copytree(root / "build" / "cnn", extra)
    (extra / "notes.txt").write_text("keep me")
    res = _cli(["train", "--config", CONFIGS / "mlp.yaml", *TINY, "--out", root / "runs" / "mlp"])
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture
def user_dir(scratch, tmp_path, monkeypatch):
    """A fresh copy of the scratch folder as the current directory."""
    root = tmp_path / "u"
    shutil.copytree(scratch, root)
    monkeypatch.chdir(root)
    return root


@dataclass
class Case:
    id: str
    argv: list
    code: int
    needles: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()  # paths whose content must not change
    check: Callable[[Path], None] | None = None
    env: dict = field(default_factory=dict)


def _is_artifact(path: str, fixed: bool | None = None):
    def check(root: Path) -> None:
        graph = artifact.load(root / path)
        assert fixed is None or graph.fixed_point == fixed

    return check


def _framed(path: str, frames: int):
    def check(root: Path) -> None:
        assert artifact.load(root / path).input.sample_shape == (frames, 3)

    return check


def _absent(path: str):
    def check(root: Path) -> None:
        assert not (root / path).exists()

    return check


def _no_checkpoint(run: str):
    def check(root: Path) -> None:
        assert not (root / run / "last.pth").exists() and not (root / run / "best.pth").exists()

    return check


C, R, S, T, E, X = "compile", "run", "simulate", "train", "energy-check", "export"
CASES = [
    # 1. -o must not delete what is not an artifact
    Case("1-out-holds-the-input", [C, "runs/cnn_copy/last.pth", "-o", "runs/cnn_copy"], 2,
         ("holds the input runs/cnn_copy/last.pth", "Choose another output path"),
         keep=("runs/cnn_copy",)),
    Case("1-out-not-an-artifact", [C, "runs/cnn/last.pth", "-o", "notes"], 2,
         ("is not a compiled artifact", "todo.txt", "--force"), keep=("notes",)),
    Case("1-out-not-an-artifact-forced", [C, "runs/cnn/last.pth", "-o", "notes", "--force"], 0,
         ("wrote notes",), check=_is_artifact("notes")),
    Case("1-out-artifact-with-foreign-files", [C, "runs/cnn/last.pth", "-o", "build/with_notes"],
         2, ("is an artifact but also holds notes.txt",), keep=("build/with_notes",)),
    Case("1-out-replaces-an-artifact", [C, "runs/cnn/last.pth", "-o", "build/cnn"], 0,
         ("wrote build/cnn",), check=_is_artifact("build/cnn")),
    Case("1-out-is-the-current-folder", [C, "runs/cnn/last.pth", "-o", "{cwd}"], 2,
         ("is the current folder",), keep=("runs", "build")),
    # 2. -o at the checkpoint itself
    Case("2-out-is-the-checkpoint", [C, "runs/cnn/last.pth", "-o", "runs/cnn/last.pth"], 2,
         ("is the input runs/cnn/last.pth",), keep=("runs/cnn",)),
    Case("2-out-is-another-file", [C, "runs/cnn/last.pth", "-o", "runs/cnn/best.pth"], 2,
         ("is a file, not an artifact folder", "--force"), keep=("runs/cnn",)),
    # 3. train --out into an existing run
    Case("3-train-other-config-into-a-run", [T, "--config", CONFIGS / "cnn.yaml", *TINY,
                                             "--out", "runs/mlp"], 2,
         ("runs/mlp already holds a run (mlp_digits", "model: 'mlp_digits' -> 'cnn_digits'",
          "--resume runs/mlp/last.pth"), keep=("runs/mlp",)),
    Case("3-resume-another-run-into-a-run", [T, "--resume", "runs/cnn/last.pth", "--out",
                                             "runs/mlp"], 2,
         ("runs/mlp already holds another run", "Choose another --out"), keep=("runs/mlp",)),
    Case("3-same-config-resumes-the-run", [T, "--config", CONFIGS / "mlp.yaml", *TINY,
                                           "--out", "runs/mlp"], 0,
         ("holds a run of this config", "is complete"), keep=("runs/mlp/best.pth",)),
    # 4. re-targeting honours or refuses the options
    Case("4-retarget-fixed-point", [C, "build/cnn", "-o", "out/fixed", "--fixed-point"], 0,
         ("fixed point: max readout error",), check=_is_artifact("out/fixed", fixed=True)),
    Case("4-retarget-max-timesteps", [C, "build/cnn", "-o", "out/x", "--max-timesteps", "2"], 1,
         ("above the limit of 2 steps",)),
    Case("4-retarget-input-shape", [C, "build/cnn", "-o", "out/x", "--input-shape", "3,8,8"], 2,
         ("--input-shape cannot change an artifact",)),
    # 5. divergence and empty schedules
    Case("5-diverging-training-stops", [T, "--config", CONFIGS / "mlp.yaml", *TINY, "--lr",
                                        "1e6", "--clip_grad_norm", "0", "--out", "runs/div"], 1,
         ("training diverged at epoch 0, step", "no checkpoint was written", "lr 1e+06"),
         ("-9223372036854775808",), check=_no_checkpoint("runs/div")),
    Case("5-resume-a-nan-checkpoint", [T, "--resume", "nan_weight.pth", "--out", "runs/n"], 1,
         ("holds NaN or Inf values (body.0.0.weight)",), check=_no_checkpoint("runs/n")),
    Case("5-zero-epochs", [T, "--config", CONFIGS / "mlp.yaml", "--epochs", "0", "--out",
                           "runs/z"], 2, ("epochs must be in [1, inf), got 0",)),
    Case("5-negative-epochs", [T, "--config", CONFIGS / "mlp.yaml", "--epochs", "-3", "--out",
                               "runs/z"], 2, ("epochs must be in [1, inf), got -3",)),
    # 7. impossible values
    Case("7-calib-samples-negative", [C, "runs/cnn/last.pth", "-o", "o", "--calib", "digits",
                                      "--calib-samples", "-5"], 2,
         ("Invalid value for '--calib-samples'",)),
    Case("7-max-timesteps-zero", [C, "runs/cnn/last.pth", "-o", "o", "--max-timesteps", "0"], 2,
         ("Invalid value for '--max-timesteps'",)),
    Case("7-input-shape-zero", [C, "runs/cnn/last.pth", "-o", "o", "--input-shape", "1,0,8"], 2,
         ("not a shape of positive sizes",)),
    Case("7-run-timeout-zero", [R, "build/cnn", "--timeout", "0"], 2,
         ("Invalid value for '--timeout'",)),
    Case("7-run-timeout-nan", [R, "build/cnn", "--timeout", "nan"], 2,
         ("'nan' is not a finite number",)),
    Case("7-simulate-workers-zero", [S, "build/cnn", "--data", "digits", "--workers", "0"], 2,
         ("Invalid value for '--workers'",)),
    Case("7-simulate-batch-zero", [S, "build/cnn", "--data", "digits", "--batch", "0"], 2,
         ("Invalid value for '--batch'",)),
    Case("7-simulate-limit-zero", [S, "build/cnn", "--data", "digits", "--limit", "0"], 2,
         ("Invalid value for '--limit'",)),
    Case("7-simulate-step-time-nan", [S, "build/cnn", "--data", "digits",
                                      "--time-per-step-us", "nan"], 2, ("not a finite number",)),
    Case("7-energy-check-limit-zero", [E, "build/cnn", "--data", "digits", "--limit", "0"], 2,
         ("Invalid value for '--limit'",)),
    Case("7-simulate-labels-out-of-range", [S, "build/cnn", "--data", "npz:bad_labels.npz",
                                            "--quiet"], 1,
         ("has labels in [-1, 30], the network has 10 classes",)),
    Case("7-run-labels-out-of-range", [R, "build/cnn", "--target", "numpy", "--data",
                                       "npz:bad_labels.npz"], 1, ("has labels in [-1, 30]",)),
    Case("7-energy-check-without-model", [E, "build/cnn", "--data", "digits", "--limit", "20",
                                          "--quiet"], 0,
         ("no --model given", "training-time estimates", "pass --model CHECKPOINT",
          "SOPs", "nJ per sample")),
    Case("7-train-momentum", [T, "--config", CONFIGS / "mlp.yaml", "--momentum", "5"], 2,
         ("momentum must be in [0, 1), got 5.0",)),
    Case("7-train-lr-nan", [T, "--config", CONFIGS / "mlp.yaml", "--lr", "nan"], 2,
         ("lr must be in (0, inf), got nan",)),
    # 8. a T that would step for minutes
    Case("8-huge-T-refused", [C, "big_T.pth", "-o", "out/big"], 1,
         ("is above the limit of 1024 steps", "pass --max-timesteps"),
         check=lambda root: not (root / "out" / "big").exists()),
    # 9. tracebacks
    Case("9-run-artifact-bad-json", [R, "build/bad_json", "--target", "numpy"], 1,
         ("graph.json or weights.npz is malformed", "recompile it")),
    Case("9-run-artifact-bad-shape", [R, "build/bad_shape", "--target", "numpy"], 1,
         ("build/bad_shape", "recompile")),
    Case("9-run-wrong-data-shape", [R, "build/cnn", "--target", "numpy", "--data",
                                    "npz:wrong_shape.npz"], 1,
         ("has samples of shape (3, 4, 4), the network expects (1, 8, 8)",)),
    *[Case(f"9-onnx-{name}", [C, f"onnx/{name}.onnx", "-o", "o"], 1, (needle,))
      for name, needle in [("truncated", "is not an ONNX model"),
                           ("random", "is not an ONNX model"),
                           ("text", "is not an ONNX model"),
                           ("empty", "holds no ONNX graph"),
                           ("dangling", "input 'nowhere'"),
                           ("dynamic_shape", "needs a fixed per-sample shape"),
                           ("no_shape", "is not a valid ONNX model")]],
    Case("9-train-batch-size-zero", [T, "--config", CONFIGS / "mlp.yaml", "--batch_size", "0"],
         2, ("batch_size must be in [1, inf), got 0",)),
    Case("9-train-negative-lr", [T, "--config", CONFIGS / "mlp.yaml", "--lr", "-0.1"], 2,
         ("lr must be in (0, inf), got -0.1",)),
    Case("9-resume-with-another-architecture", [T, "--resume", "runs/cnn/last.pth", "--config",
                                                CONFIGS / "mlp.yaml", "--out", "runs/cnn"], 2,
         ("holds a 'cnn_digits' model, the config asks for 'mlp_digits'",),
         keep=("runs/cnn",)),
    Case("9-resume-with-another-optimizer", [T, "--resume", "runs/mlp/last.pth", "--optimizer",
                                             "adamw", "--epochs", "2"], 2,
         ("holds sgd optimizer state; --optimizer adamw cannot continue it",),
         keep=("runs/mlp",)),
    Case("9-lava-python-is-a-directory", [R, "build/cnn", "--samples", "1"], 1,
         ("PSEUDOSNN_LAVA_PYTHON=", "is a directory", "make lava-venv"),
         env={"PSEUDOSNN_LAVA_PYTHON": "{cwd}"}),
    Case("9-lava-python-not-executable", [R, "build/cnn", "--samples", "1"], 1,
         ("is not an executable file",), env={"PSEUDOSNN_LAVA_PYTHON": "{cwd}/random.pth"}),
    # 10. misleading messages
    Case("10-random-bytes-pth", [C, "random.pth", "-o", "o"], 1,
         ("random.pth is corrupt or not a torch file",), ("--trust-checkpoint",)),
    Case("10-out-dot", [C, "runs/cnn/last.pth", "-o", "."], 2,
         ("the artifact folder . is the current folder", "./artifact"), ("empty name",)),
    Case("10-calib-samples-zero", [C, "runs/cnn/last.pth", "-o", "o", "--calib", "digits",
                                   "--calib-samples", "0"], 2,
         ("Invalid value for '--calib-samples'",), ("cannot reshape",)),
    Case("10-onnx-lstm", [C, "onnx/lstm.onnx", "-o", "o"], 1,
         ("ONNX operators LSTM, Transpose", "Recurrent layers"), ("operator Constant",)),
]


SNN = ["--from", "snntorch", "--timesteps", "5"]
NIR_CASES = [  # NIR files in and out (issue 15)
    *[Case(f"nir-{name}", [C, f"nir/{name}.nir", "-o", "o", *SNN], 1, needles)
      for name, needles in [
          ("truncated", ("nir/truncated.nir is not a NIR file: HDF5 cannot open it",)),
          ("random", ("nir/random.nir is not a NIR file",)),
          ("text", ("nir/text.nir is not a NIR file",)),
          ("empty", ("nir/empty.nir is not a NIR file",)),
          ("other", ("nir/other.nir is an HDF5 file but not a NIR graph",)),
          ("cycle", ("has a cycle", "recurrence is not supported yet")),
          ("subgraph", ("node 'sub' is a subgraph", "recurrence is not supported yet")),
          ("unknown", ("node 'lif' has type 'Spiky'", "not a NIR node this importer knows")),
          ("tau_varies", ("node 'lif' (LIF): tau differs across neurons",)),
          ("reset_fires", ("node 'lif' (LIF): hard-reset value v_reset=2",)),
          ("delay", ("node 'd' (Delay): a delay of 2 steps", "only zero delays")),
          ("partial_flatten", ("node 'flat' (Flatten): flattening axes 1..2",)),
          ("li_inside", ("node 'li' (LI): a non-spiking node must feed only the Output",)),
      ]],
    Case("nir-unstable-euler", [C, "nir/unstable.nir", "-o", "o", *SNN], 1,
         ("node 'lif' (LIF): tau = 1e-05 with dt = 0.0001 decays by 10", "is --dt right?")),
    Case("nir-missing-from", [C, "nir/good.nir", "-o", "o"], 2,
         ("nir/good.nir does not say which library wrote it", "--from nir|snntorch|norse")),
    Case("nir-missing-dt", [C, "nir/good.nir", "-o", "o", "--from", "norse", "--timesteps",
                            "5"], 2,
         ("node 'lif' (LIF) has time constants and NIR stores no time step: give --dt",)),
    Case("nir-missing-timesteps", [C, "nir/good.nir", "-o", "o", "--from", "snntorch"], 2,
         ("give --timesteps N",)),
    Case("nir-dt-against-the-library", [C, "nir/good.nir", "-o", "o", *SNN, "--dt", "1e-3"],
         2,
         ("snnTorch 1.0.0 fixes dt = 0.0001; --dt 0.001 would not reproduce",)),
    Case("nir-dt-negative", [C, "nir/good.nir", "-o", "o", *SNN, "--dt", "-1"], 2,
         ("Invalid value for '--dt'",)),
    Case("nir-options-on-an-artifact", [C, "build/nir_rate", "-o", "o", *SNN], 2,
         ("--from, --dt, --timesteps and --frames read NIR files",)),
    Case("nir-extension-edited-by-another-tool", [C, "nir/ours.nir", "-o", "o"], 1,
         ("the NIR nodes were changed after pseudosnn exported them", "--from nir --dt")),
    Case("nir-good-file-compiles", [C, "nir/good.nir", "-o", "o", *SNN], 0, ("wrote o",),
         check=_is_artifact("o")),
    Case("nir-good-file-compiles-with-frames", [C, "nir/good.nir", "-o", "o", *SNN,
                                                "--frames"], 0, ("wrote o",),
         check=_framed("o", 5)),
    Case("nir-frames-into-a-leaky-readout", [C, "nir/input_to_li.nir", "-o", "o", *SNN,
                                             "--frames"], 1,
         ("the input reaches the leaky readout directly", "read it without --frames")),
    Case("nir-frames-on-our-own-file", [C, "nir/ours.nir", "-o", "o", "--frames"], 2,
         ("--dt, --timesteps and --frames apply to another reading",)),
    Case("nir-export-fixed-point", [X, "build/nir_fixed", "-o", "f.nir"], 1,
         ("export the float artifact",), check=_absent("f.nir")),
    Case("nir-export-lossy-refused", [X, "build/nir_rate", "-o", "r.nir"], 2,
         ("plain NIR readers would compute another network", "resets by subtraction",
          "pass --lossy"), check=_absent("r.nir")),
    Case("nir-export-into-the-artifact", [X, "build/nir_rate", "-o",
                                          "build/nir_rate/m.nir"], 2,
         ("is inside the input build/nir_rate",), keep=("build/nir_rate",)),
    Case("nir-export-existing-file", [X, "build/nir_rate", "-o", "nir/good.nir", "--lossy"],
         2,
         ("nir/good.nir exists; pass --force",), keep=("nir/good.nir",)),
]


CASES += NIR_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, user_dir: Path):
    fill = lambda a: str(a).replace("{cwd}", str(user_dir))  # noqa: E731
    before = {p: _digest(user_dir / p) for p in case.keep}
    res = _cli([fill(a) for a in case.argv], env={k: fill(v) for k, v in case.env.items()})
    assert res.exit_code == case.code, res.output
    if case.code:
        assert isinstance(res.exception, SystemExit), repr(res.exception)
        error_lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
        assert len(error_lines) == 1, res.output
    assert "Traceback" not in res.output
    for needle in case.needles:
        assert needle in res.output, res.output
    for needle in case.absent:
        assert needle not in res.output, res.output
    for p, digest in before.items():
        assert _digest(user_dir / p) == digest, f"{p} changed"
    if case.check:
        case.check(user_dir)


def test_9_run_lava_py_without_lava_names_the_fix(user_dir):
    """The artifact's own entry point run by a Python that lacks lava (this venv's)."""
    np.savez(user_dir / "x.npz", x=np.zeros((1, 1, 8, 8)))
    proc = subprocess.run([sys.executable, "build/cnn/run_lava.py", "--inputs", "x.npz",
                           "--out", "r.npz"], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot run this artifact on Lava: No module named 'lava'" in proc.stderr
    assert "make lava-venv" in proc.stderr


def test_10_slow_lava_run_is_not_called_hung(user_dir, monkeypatch):
    """The child's watchdog stops a run at --timeout (exit 124): the message says it may
    be slow and how to give it more time."""
    from pseudosnn.backends.lava_backend import LavaRunError, run_entry

    fake = user_dir / "fake_python"
    fake.write_text("#!/bin/sh\necho still stepping >&2\nexit 124\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PSEUDOSNN_LAVA_PYTHON", str(fake))
    with pytest.raises(LavaRunError) as info:
        run_entry(["--jobs", "j.json"], timeout=5)
    msg = str(info.value)
    assert "stopped after --timeout 5 s (slow or hung: raise --timeout" in msg
    assert "still stepping" in msg and "a Lava process hung" not in msg


def test_10_stale_temporaries_of_a_killed_compile_are_removed(user_dir):
    """What a SIGKILLed compile leaves (a hidden temporary named after a dead process) is
    removed by the next compile of the same output; a live writer's is left alone."""
    dead = _dead_pid()
    stale = user_dir / "build" / f".cnn.pid{dead}.abcd1234"
    stale.mkdir()
    (stale / "graph.json").write_text("{half")
    live = user_dir / "build" / f".cnn.pid{os.getppid()}.efgh5678"
    live.mkdir()
    res = _cli([C, "runs/cnn/last.pth", "-o", "build/cnn"])
    assert res.exit_code == 0, res.output
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in (user_dir / "build").iterdir() if p.name.startswith(".cnn")) \
        == [live.name]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_5_a_parameter_that_turns_nan_stops_training_at_that_step(tmp_path):
    """The loss of step 2 is still finite; the parameter is not: the run stops there,
    names it, and writes nothing."""
    from pseudosnn.config import load_config
    from pseudosnn.trainer import Trainer, TrainingDiverged

    cfg = load_config(CONFIGS / "mlp.yaml", {"epochs": 1, "calib_epochs": 0, "batch_size": 64,
                                             "progress": False})
    trainer = Trainer(cfg, tmp_path, log=lambda s: None)
    calls = []

    def poison(module, inputs, output):
        calls.append(1)
        if len(calls) == 3:  # the forward of step 2 (train mode)
            with torch.no_grad():
                next(trainer.model.parameters()).view(-1)[0] = float("inf")

    trainer.model.register_forward_hook(poison)
    try:
        with pytest.raises(TrainingDiverged, match=r"epoch 0, step 2: parameter .* became NaN"):
            trainer.fit()
    finally:
        trainer.close()
    assert not (tmp_path / "last.pth").exists()


def test_5_a_non_finite_checkpoint_is_never_written(tmp_path):
    from pseudosnn.checkpoint import CheckpointError, make_checkpoint, save_checkpoint
    from pseudosnn.models import build_model

    model = build_model("mlp_digits", num_classes=10, input_shape=(64,),
                        neuron={"family": "pseudo"})
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    with pytest.raises(CheckpointError, match="hold NaN or Inf"):
        save_checkpoint(make_checkpoint(model, epoch=0), tmp_path / "last.pth")
    assert os.listdir(tmp_path) == []
