"""The Lava backend against the simulator, spike for spike (issue 6).

Every Lava run happens in the Lava venv (``lava_python`` fixture: a missing venv fails
under CI). Lava starts slowly, so each mode's graphs share one Lava-venv process
(``LavaBackend.run_many``) and the per-case tests read from that module-scoped run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.backends.lava_backend import (
    LavaBackend,
    LavaRunError,
    LavaUnavailableError,
    run_artifact,
)
from pseudosnn.compiler import artifact
from pseudosnn.compiler.quantize import quantize
from pseudosnn.compiler.spiking.graph import (
    WEIGHT_EXP_MAX,
    WEIGHT_MAX,
    WEIGHT_MIN,
    InputNode,
    Population,
    Projection,
    Readout,
    SpikingGraph,
)
from pseudosnn.compiler.spiking.reference import evaluate
from pseudosnn.compiler.spiking.schedule import schedule
from pseudosnn.compiler.spiking.semantics import V_MAX
from pseudosnn.compiler.testing import random_graph
from pseudosnn.simulator.engine import simulate

pytestmark = pytest.mark.lava
BATCH = 3


@pytest.fixture(scope="module")
def lava_env(lava_python):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PSEUDOSNN_LAVA_PYTHON", lava_python)
        yield lava_python


def _inputs(graph: SpikingGraph, seed: int = 1, n: int = BATCH) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *graph.input.sample_shape))


def _random_cases() -> dict[str, SpikingGraph]:
    cases = {}
    for kind in ("mlp", "cnn", "residual"):
        for stream in (False, True):
            for per_channel in ((False,) if kind == "mlp" or stream else (False, True)):
                name = f"{kind}-{'stream' if stream else 'rate'}{'-perchannel' * per_channel}"
                cases[name] = random_graph(kind, seed=3, stream=stream, per_channel=per_channel)
    # spike max pooling (rate and stream consumers), an analog max-pool stem, and a small
    # event-frame model: frames streamed one per step into a stream-coupled first layer
    cases["cnn-rate-spike-pool-perchannel"] = random_graph("cnn", seed=4, pool=True,
                                                           per_channel=True)
    cases["cnn-stream-spike-pool"] = random_graph("cnn", seed=4, pool=True, stream=True)
    cases["cnn-rate-analog-stem"] = random_graph("cnn", seed=4, stem=True)
    cases["cnn-stream-event-frames"] = random_graph("cnn", seed=4, frames=4, stream=True,
                                                    pool=True)
    return cases


def _with_event_scale(graph: SpikingGraph) -> SpikingGraph:
    """Move the 1/T folding of conv1->conv2 (conv) and conv2->out (dense) into
    ``event_scale``: the same network, through Lava's float event-scale path."""
    projs = []
    for pr in graph.projections:
        if pr.name in ("conv1->conv2", "conv2->out"):
            T = np.broadcast_to(graph.population(pr.source).timesteps_full(),
                                graph.shape_of(pr.source)).astype(np.float64)
            w = np.asarray(pr.weight, np.float64)
            w = w * T[:, :1, :1].reshape(1, -1, 1, 1) if pr.kind == "conv" else w * T.reshape(1, -1)
            pr = replace(pr, weight=w, event_scale=1.0 / T)
        projs.append(pr)
    return replace(graph, projections=tuple(projs))


def _hand_quantised(graph: SpikingGraph, scale: float) -> SpikingGraph:
    """A fixed-point copy with one scale everywhere and the extreme int8 weights -128 and
    127 planted in every projection (Lava's Dense clips and truncates exactly there)."""
    pops = [replace(p, threshold=int(round(p.threshold * scale)),
                    v0=int(round(p.threshold * scale)) // 2,
                    bias=np.round(np.asarray(p.bias) * scale).astype(np.int64),
                    units_per_float=scale)
            for p in graph.populations]
    ro = replace(graph.readout, units_per_float=scale,
                 bias=np.round(np.asarray(graph.readout.bias) * scale).astype(np.int64))
    projs = []
    for pr in graph.projections:
        if not pr.is_encoder:
            w = np.asarray(pr.weight) * scale
            e = int(np.clip(np.ceil(np.log2(np.abs(w).max() / WEIGHT_MAX)), 0, WEIGHT_EXP_MAX))
            q = np.clip(np.round(w / 2 ** e), WEIGHT_MIN, WEIGHT_MAX).astype(np.int64)
            q.reshape(-1)[0], q.reshape(-1)[-1] = WEIGHT_MIN, WEIGHT_MAX
            pr = replace(pr, weight=q, weight_exp=e)
        projs.append(pr)
    g = replace(graph, populations=tuple(pops), readout=ro, projections=tuple(projs),
                fixed_point=True)
    g.validate()
    return g


def _conv_wrap_graph() -> SpikingGraph:
    """A fixed-point conv whose per-step output passes 2**23: 64 always-firing channels
    into a 3x3 conv of +127 (channel 0) and -128 (channel 1) with exponent 7, so the
    centre sums 576 * 127 * 2**7 = 9,363,456. Lava's own fixed Conv would wrap that to a
    negative number; the backend must route it through Dense (and the 24-bit membrane
    then saturates)."""
    wide = Population("wide", (64, 4, 4), np.int64(4), threshold=100,
                      bias=np.full((64, 1, 1), 200, np.int64), v0=50, units_per_float=100.0)
    narrow = Population("narrow", (2, 4, 4), np.int64(2), threshold=1000,
                        bias=np.zeros((2, 1, 1), np.int64), v0=500, units_per_float=100.0)
    w = np.empty((2, 64, 3, 3), np.int64)
    w[0], w[1] = WEIGHT_MAX, WEIGHT_MIN
    rng = np.random.default_rng(0)
    projs = (
        Projection("input->wide", "input", "wide", "conv", np.full((64, 1, 1, 1), 0.1), delay=0),
        Projection("wide->narrow", "wide", "narrow", "conv", w, padding=(1, 1), weight_exp=7),
        Projection("narrow->out", "narrow", "out", "dense",
                   rng.integers(-128, 128, size=(5, 32)), weight_exp=1),
    )
    g = schedule(SpikingGraph(InputNode((1, 4, 4)), (wide, narrow),
                              Readout("out", (5,), np.zeros(5, np.int64), units_per_float=100.0),
                              projs, fixed_point=True))
    g.validate()
    return g


def _run_cases(cases: dict[str, SpikingGraph]) -> dict[str, tuple]:
    pairs = [(g, _inputs(g)) for g in cases.values()]
    t0 = time.perf_counter()
    lava = LavaBackend(timeout=300).run_many(pairs, record_spikes=True)
    print(f"\n{len(pairs)} Lava runs in one process: {time.perf_counter() - t0:.1f} s")
    return {name: (g, x, r, simulate(g, x, record_spikes=True))
            for (name, g), (_, x), r in zip(cases.items(), pairs, lava, strict=True)}


@pytest.fixture(scope="module")
def float_runs(lava_env):
    cases = _random_cases()
    cases["cnn-rate-event-scale"] = _with_event_scale(random_graph("cnn", seed=5))
    return _run_cases(cases)


@pytest.fixture(scope="module")
def fixed_runs(lava_env):
    cases = {}
    for name, g in _random_cases().items():
        fixed, _ = quantize(g)
        cases[f"{name}-quantize"] = fixed
    cases["mlp-rate-hand-64"] = _hand_quantised(random_graph("mlp", seed=3), 64.0)
    cases["residual-stream-hand-3000"] = _hand_quantised(
        random_graph("residual", seed=3, stream=True), 3000.0)
    # 2**22 units per float unit: encoder currents beyond the 24-bit membrane (saturation)
    cases["cnn-stream-hand-2^22"] = _hand_quantised(
        random_graph("cnn", seed=4, stream=True), float(2 ** 22))
    cases["conv-beyond-24-bits"] = _conv_wrap_graph()
    return _run_cases(cases)


def _assert_same_run(graph, x, lava, sim, exact_readout: bool):
    assert lava.steps == sim.steps == graph.latency_steps
    for p in (*graph.populations, *graph.pools):
        np.testing.assert_array_equal(lava.spikes[p.name], sim.spikes[p.name],
                                      err_msg=f"spike trains of {p.name}")
        np.testing.assert_array_equal(lava.counts[p.name], sim.counts[p.name])
    assert lava.sops == sim.sops
    assert lava.macs == sim.macs
    assert lava.compares == sim.compares
    if exact_readout:
        np.testing.assert_array_equal(lava.output, sim.output)
    else:  # float: same terms, summed in another order (per step vs per window)
        np.testing.assert_allclose(lava.output, sim.output, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(lava.output.argmax(-1), sim.output.argmax(-1))
    # the comparison is not vacuous: neurons fire, but not all of them all the time
    total = sum(int(c.sum()) for c in sim.counts.values())
    full = sum(int(np.broadcast_to(p.timesteps_full(), p.shape).sum()) * x.shape[0]
               for p in graph.populations)
    assert 0 < total < full


FLOAT_CASES = [*_random_cases(), "cnn-rate-event-scale"]
FIXED_CASES = [f"{n}-quantize" for n in _random_cases()] + [
    "mlp-rate-hand-64", "residual-stream-hand-3000", "cnn-stream-hand-2^22",
    "conv-beyond-24-bits"]


@pytest.mark.parametrize("case", FLOAT_CASES)
def test_float_lava_equals_simulator_spike_for_spike(float_runs, case):
    graph, x, lava, sim = float_runs[case]
    assert lava.extra["mode"] == "floating_pt"
    _assert_same_run(graph, x, lava, sim, exact_readout=False)


@pytest.mark.parametrize("case", FIXED_CASES)
def test_fixed_lava_equals_simulator_bit_for_bit(fixed_runs, case):
    graph, x, lava, sim = fixed_runs[case]
    assert lava.extra["mode"] == "fixed_pt"
    _assert_same_run(graph, x, lava, sim, exact_readout=True)
    np.testing.assert_array_equal(lava.extra["readout_raw"] / graph.readout.units_per_float,
                                  lava.output)


def test_float_rate_counts_match_closed_form(float_runs):
    """Independent of the simulator: rate graphs against compiler.reference."""
    checked = 0
    for graph, x, lava, _ in float_runs.values():
        if all(p.coupling == "rate" for p in graph.populations):
            ref = evaluate(graph, x)
            for name, n in ref.counts.items():
                np.testing.assert_array_equal(lava.counts[name], n)
            np.testing.assert_allclose(lava.output, ref.output, rtol=1e-12, atol=1e-12)
            checked += 1
    assert checked >= 4


def test_fixed_cases_reach_the_arithmetic_edges(fixed_runs):
    """The fixed-point cases exercise what could break bit-exactness: weight exponents 0
    and >= 5 (Dense gets weight_exp-1 = -1 and large shifts), int8 extremes, delays > 1
    and encoder currents beyond the 24-bit membrane."""
    graphs = [g for g, *_ in fixed_runs.values()]
    exps = {pr.weight_exp for g in graphs for pr in g.projections if not pr.is_encoder}
    assert 0 in exps and max(exps) >= 5
    assert any(pr.delay > 1 for g in graphs for pr in g.projections)
    g, x, *_ = fixed_runs["cnn-stream-hand-2^22"]
    enc = [pr for pr in g.projections if pr.is_encoder][0]
    from pseudosnn.compiler.spiking.synapses import encode_fixed, project
    units = g.population(enc.target).units_per_float
    assert np.abs(encode_fixed(project(enc, x), units)).max() > V_MAX
    g, x, lava, sim = fixed_runs["conv-beyond-24-bits"]
    assert 576 * WEIGHT_MAX * 2 ** 7 > 2 ** 23 - 1  # what lava's Conv would have wrapped
    assert (lava.counts["wide"] == 4).all()  # every input fires: the worst case happens
    assert (lava.counts["narrow"][:, 0] == 2).all() and (lava.counts["narrow"][:, 1] == 0).all()


# --- failure paths ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    g = random_graph("cnn", seed=2)
    out = tmp_path_factory.mktemp("art") / "cnn"
    artifact.save(g, out, target="lava", extra_files=LavaBackend().emit(g))
    return g, out


def test_failing_lava_process_gives_its_traceback_quickly(lava_env, small_artifact):
    graph, art = small_artifact
    t0 = time.perf_counter()
    with pytest.raises(LavaRunError) as info:
        run_artifact(art, _inputs(graph, n=2), timeout=120, inject_fault="conv2:raise:3")
    elapsed = time.perf_counter() - t0
    msg = str(info.value)
    assert "failed with exit code 2" in msg
    assert "InjectedFault" in msg and "'conv2' failed at time step 4" in msg
    assert elapsed < 60, f"a failing process took {elapsed:.0f} s to surface"


def test_hanging_lava_process_is_killed_at_the_timeout(lava_env, small_artifact):
    graph, art = small_artifact
    t0 = time.perf_counter()
    with pytest.raises(LavaRunError, match=r"stopped after --timeout 8 s \(slow or hung"):
        run_artifact(art, _inputs(graph, n=2), timeout=8, inject_fault="conv1:hang:2")
    assert time.perf_counter() - t0 < 8 + 30


def test_edited_artifact_is_refused_with_the_reason(lava_env, small_artifact, tmp_path):
    graph, art = small_artifact
    broken = tmp_path / "broken"
    artifact.save(graph, broken)
    weights = broken / artifact.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(artifact.ArtifactError, match="does not match its sha256"):
        run_artifact(broken, _inputs(graph, n=1), timeout=60)  # refused before Lava starts
    with pytest.raises(LavaRunError, match="does not match its sha256"):  # and by Lava's side
        run_artifact(broken, _inputs(graph, n=1), timeout=60, graph=graph)


def test_missing_lava_venv_names_the_fix(monkeypatch, small_artifact):
    monkeypatch.setenv("PSEUDOSNN_LAVA_PYTHON", "/nonexistent/.venv-lava/bin/python")
    graph, art = small_artifact
    with pytest.raises(LavaUnavailableError, match="make lava-venv"):
        run_artifact(art, _inputs(graph, n=1))


# --- the artifact's own entry point and the CLI ----------------------------------------
def test_emitted_entry_point_runs_the_artifact(lava_env, small_artifact, tmp_path):
    graph, art = small_artifact
    x = _inputs(graph, seed=7)
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "result.npz"
    proc = subprocess.run([lava_env, str(art / "run_lava.py"), "--inputs", str(tmp_path / "x.npz"),
                           "--out", str(out), "--timeout", "120"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["samples"] == BATCH
    sim = simulate(graph, x)
    with np.load(out) as z:
        for p in graph.populations:
            np.testing.assert_array_equal(z[f"counts/{p.name}"], sim.counts[p.name])
        np.testing.assert_allclose(z["output"], sim.output, rtol=1e-12, atol=1e-12)
    assert "run_lava.py" in (art / "README_lava.md").read_text()


def test_cli_run_target_lava_checks_against_the_simulator(lava_env, small_artifact, tmp_path):
    from click.testing import CliRunner

    from pseudosnn.cli import main

    graph, art = small_artifact
    x = _inputs(graph, seed=9, n=4)
    y = simulate(graph, x).output.argmax(-1)  # labels the network gets right by definition
    np.savez(tmp_path / "data.npz", x=x, y=y)
    summary = tmp_path / "summary.json"
    res = CliRunner().invoke(main, ["run", str(art), "--target", "lava", "--data",
                                    f"npz:{tmp_path / 'data.npz'}", "--samples", "4",
                                    "--check", "--out", str(summary)])
    assert res.exit_code == 0, res.output
    rep = json.loads(summary.read_text())
    assert rep["samples"] == 4 and rep["accuracy"] == 1.0
    assert all(rep["agreement_with_simulator"].values())
    assert rep["latency_steps"] == graph.latency_steps


def test_cli_run_refuses_fixed_point_on_a_float_artifact(small_artifact):
    from click.testing import CliRunner

    from pseudosnn.cli import main

    _, art = small_artifact
    res = CliRunner().invoke(main, ["run", str(art), "--fixed-point", "--samples", "1"])
    assert res.exit_code != 0 and "float graph" in res.output


# --- dependency rule --------------------------------------------------------------------
def test_lava_backend_imports_no_torch(lava_env):
    blocker = ("import sys\nclass B:\n    def find_spec(self, name, *a):\n"
               "        if name == 'torch' or name.startswith('torch.'):\n"
               "            raise ImportError('torch is blocked')\n"
               "sys.meta_path.insert(0, B())\n")
    main_env = blocker + "import pseudosnn.backends.lava_backend, pseudosnn.backends.command\n"
    proc = subprocess.run([sys.executable, "-c", main_env], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lava_side = blocker + ("import pseudosnn.backends.lava.build, pseudosnn.backends.lava.entry\n"
                           "assert 'torch' not in sys.modules\n")
    proc = subprocess.run([lava_env, "-c", lava_side], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_python_without_lava_names_the_fix(monkeypatch, small_artifact):
    """The main venv's Python has no lava: the error says how to create the Lava venv."""
    monkeypatch.setenv("PSEUDOSNN_LAVA_PYTHON", sys.executable)
    graph, art = small_artifact
    with pytest.raises(LavaRunError, match="make lava-venv") as info:
        run_artifact(art, _inputs(graph, n=1), timeout=60)
    assert "No module named 'lava'" in str(info.value)
