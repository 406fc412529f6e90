"""Compiled digits models on Lava (issue 6): MLP, CNN and residual CNN with heterogeneous
T, a CNN with one T per channel, a vanilla IF CNN (stream coupling), a CNN that max-pools
spikes (issue 12), the leaky and hard-reset families (issue 13: LIF with soft reset on our
process; IF with hard reset, ASGL and NSNN on Lava's own LIF process) and the two together
(a hard-reset IF CNN whose spikes are max-pooled: Lava's LIF feeds our spike pools), float
and fixed point, trained here in seconds
(configs/digits), compiled with ``--target lava``; Lava must equal the simulator spike for
spike and in accuracy.

Lava's own Conv ProcessModel convolves channel pair by channel pair (slow), so a short
slice runs with it and a longer accuracy slice with the same arithmetic as one GEMM
(``conv_model="im2col"``, checked equal to lava's ``utils.conv`` below)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from pseudosnn.backends.lava_backend import run_artifacts
from pseudosnn.compiler import artifact
from pseudosnn.simulator.datasets import fit_to_input, load_digits_test
from pseudosnn.simulator.engine import simulate

pytestmark = [pytest.mark.lava, pytest.mark.slow]
MODELS = ("mlp", "cnn", "rescnn", "cnn_channel", "if_cnn", "cnn_maxpool", "lif_rescnn",
          "if_hard_cnn", "asgl_mlp", "nsnn_cnn", "if_hard_cnn_maxpool")
MULTISTEP = {"if_cnn", "lif_rescnn", "if_hard_cnn", "asgl_mlp", "nsnn_cnn",
             "if_hard_cnn_maxpool"}
ON_LAVA_LIF = {"if_hard_cnn", "asgl_mlp", "nsnn_cnn", "if_hard_cnn_maxpool"}  # reset to 0
SPIKE_SLICE = 4  # samples run with lava's own Conv model, every spike recorded
ACCURACY_SLICE = 30  # samples run with the im2col Conv model


@pytest.fixture(scope="module")
def digits_artifacts(tmp_path_factory, lava_python):
    import torch
    from pseudosnn.compiler.command import compile_path

    from pseudosnn.config import load_config
    from pseudosnn.trainer import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("digits")
    arts = {}
    for name in MODELS:
        config = load_config(f"configs/digits/{name}.yaml")
        train(config, root / f"run-{name}", log=lambda s: None)
        ckpt = root / f"run-{name}" / "best.pth"
        arts[("checkpoint", name)] = ckpt
        for fixed in (False, True):
            out = root / f"{name}{'-fixed' if fixed else ''}"
            compile_path(ckpt, out, target="lava", fixed_point=fixed)
            arts[(name, fixed)] = out
    return arts


@pytest.fixture(scope="module")
def digits_runs(digits_artifacts, lava_python):
    ds = load_digits_test()
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PSEUDOSNN_LAVA_PYTHON", lava_python)
        for fixed in (False, True):
            graphs = {m: artifact.load(digits_artifacts[(m, fixed)]) for m in MODELS}
            xs = {m: fit_to_input(ds.x[:ACCURACY_SLICE], graphs[m].input.sample_shape,
                                  "digits")
                  for m in MODELS}
            own = run_artifacts([(digits_artifacts[(m, fixed)], xs[m][:SPIKE_SLICE])
                                 for m in MODELS], fixed_point=fixed, record_spikes=True,
                                timeout=600, options=["--conv-model", "lava"])
            fast = run_artifacts([(digits_artifacts[(m, fixed)], xs[m]) for m in MODELS],
                                 fixed_point=fixed, record_spikes=True, timeout=600,
                                 options=["--conv-model", "im2col"])
            for m, r_own, r_fast in zip(MODELS, own, fast, strict=True):
                sim = simulate(graphs[m], xs[m], record_spikes=True)
                runs[(m, fixed)] = (graphs[m], r_own, r_fast, sim, ds.y[:ACCURACY_SLICE])
    return runs


def _assert_equal(graph, lava, sim, n: int):
    for p in (*graph.populations, *graph.pools):
        np.testing.assert_array_equal(lava.spikes[p.name], sim.spikes[p.name][:n],
                                      err_msg=f"spikes of {p.name}")
        np.testing.assert_array_equal(lava.counts[p.name], sim.counts[p.name][:n])
    if graph.fixed_point:
        np.testing.assert_array_equal(lava.output, sim.output[:n])
    else:
        np.testing.assert_allclose(lava.output, sim.output[:n], rtol=1e-12, atol=1e-12)
    assert lava.steps == sim.steps


@pytest.mark.parametrize("fixed", [False, True], ids=["float", "fixed"])
@pytest.mark.parametrize("model", MODELS)
def test_digits_model_on_lava_equals_simulator(digits_runs, model, fixed):
    graph, own, fast, sim, y = digits_runs[(model, fixed)]
    assert graph.fixed_point == fixed
    if model in MULTISTEP:  # the classic SNN: one T, stream coupling after the encoder
        assert {p.coupling for p in graph.populations[1:]} == {"stream"}
        lif = [p.name for p in graph.populations] if model in ON_LAVA_LIF else []
        assert own.extra["lava_lif"] == lif and fast.extra["lava_lif"] == lif
    else:  # heterogeneous T, as trained: the point of the toolchain
        assert len({int(np.max(p.timesteps)) for p in graph.populations}) > 1
    if model == "cnn_channel":
        assert any(np.unique(p.timesteps).size > 1 for p in graph.populations)
    if model.endswith("maxpool"):  # two 2x2 max pools of spikes, one Lava process each
        assert len(graph.pools) == 2 and fast.compares == sim.compares
    _assert_equal(graph, own, sim, SPIKE_SLICE)
    _assert_equal(graph, fast, sim, ACCURACY_SLICE)
    assert fast.sops == sim.sops and fast.macs == sim.macs
    acc_lava = float(np.mean(fast.output.argmax(-1) == y))
    acc_sim = float(np.mean(sim.output.argmax(-1) == y))
    print(f"\n{model} {'fixed' if fixed else 'float'}: accuracy lava {acc_lava:.3f} "
          f"simulator {acc_sim:.3f} on {len(y)} test digits; latency {graph.latency_steps}; "
          f"lava {fast.extra['seconds_run'] / len(y) * 1e3:.1f} ms/sample stepping")
    assert acc_lava == acc_sim
    assert acc_lava > 0.8  # trained: the comparison is about a working classifier


def test_digits_residual_has_what_netx_cannot_load(digits_runs):
    graph = digits_runs[("rescnn", False)][0]
    targets = [pr.target for pr in graph.projections]
    assert any(targets.count(t) > 1 for t in targets)  # residual add: two projections in


def test_im2col_conv_model_is_lavas_arithmetic(lava_python):
    """The vectorised Conv model against lava's own ``utils.conv`` (scipy), float and
    integer, groups/stride/padding/non-square kernels, in the Lava venv."""
    script = r"""
import json, numpy as np
from lava.proc.conv import utils
from pseudosnn.backends.lava.models import lava_conv_im2col
rng = np.random.default_rng(0)
res = []
for X, Y, C, K, kx, ky, s, p, g in [(4, 4, 32, 32, 3, 3, (1, 1), (1, 1), 1),
                                    (8, 6, 4, 6, 3, 2, (2, 1), (1, 0), 2),
                                    (5, 7, 6, 6, 1, 1, (2, 2), (0, 0), 6)]:
    x = rng.random((X, Y, C)) < 0.4
    for w in (rng.normal(size=(K, kx, ky, C // g)),
              rng.integers(-2**14, 2**14, size=(K, kx, ky, C // g)).astype(np.int32)):
        a = utils.conv(x, w, (kx, ky), s, p, (1, 1), g)
        b = lava_conv_im2col(x, w, s, p, g).astype(w.dtype)
        res.append([list(a.shape) == list(b.shape), float(np.abs(a - b).max()),
                    w.dtype.kind])
print(json.dumps(res))
"""
    proc = subprocess.run([lava_python, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert len(res) == 6
    for same_shape, diff, kind in res:
        assert same_shape
        assert diff == 0 if kind == "i" else diff < 1e-12


def test_every_command_prints_the_same_encoder_macs_and_sops(digits_artifacts, lava_python,
                                                             tmp_path, monkeypatch):
    """The compile summary (on its calibration samples), ``simulate``, ``run --target lava``
    and ``run --target onnx`` on the same 20 digits: one count each, from one module."""
    import re

    from click.testing import CliRunner

    from pseudosnn.cli import main

    monkeypatch.setenv("PSEUDOSNN_LAVA_PYTHON", lava_python)
    n = 20
    art = tmp_path / "cnn"

    def cli(*args):
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res.output

    def number(pattern, text):
        return float(re.search(pattern, text).group(1).replace(",", ""))

    out = cli("compile", digits_artifacts[("checkpoint", "cnn")], "-o", art, "--target",
              "lava", "--calib", "digits", "--calib-samples", n)
    macs = {"compile": number(r"encoder MACs: ([\d,]+)", out)}
    sops = {"compile": number(r"calibration samples \(simulator\): ([\d,.]+) SOPs", out)}
    out = cli("simulate", art, "--data", "digits", "--limit", n, "--quiet")
    macs["simulate"] = number(r"SOPs, ([\d,.]+) encoder MACs", out)
    sops["simulate"] = number(r"per sample: [\d,.]+ spikes, ([\d,.]+) SOPs", out)
    for target in ("lava", "onnx"):
        out = cli("run", art, "--target", target, "--samples", n, "--check")
        macs[target] = number(r"encoder_macs_per_sample: ([\d.]+)", out)
        sops[target] = number(r"sops_per_sample: ([\d.]+)", out)
    assert len(set(macs.values())) == 1 and macs["simulate"] == 7744, macs
    assert len(set(sops.values())) == 1, sops
