"""The engine against the contract: the closed-form reference (rate coupling), a literal
step loop over ``if_step`` (stream coupling, and rate in fixed point), float and fixed."""

import numpy as np
import pytest

from pseudosnn.backends.numpy_backend import NumpyBackend
from pseudosnn.compiler.graph import Projection
from pseudosnn.compiler.linalg import project
from pseudosnn.compiler.reference import evaluate
from pseudosnn.compiler.testing import random_graph
from pseudosnn.simulator.engine import SimulationError, simulate
from pseudosnn.simulator.kernels import Projector, conv2d_gemm

KINDS = ["mlp", "cnn", "residual"]


def batch(graph, n=6, seed=0):
    return np.random.default_rng(seed).normal(0, 1.2, size=(n, *graph.input.shape))


def assert_counts_consistent(res):
    for name, s in res.spikes.items():
        assert s.dtype == bool and s.shape[1] == res.steps
        assert np.array_equal(s.sum(axis=1), res.counts[name])
        assert np.array_equal(s.sum(axis=tuple(i for i in range(s.ndim) if i != 1)),
                              res.extra["spikes_per_step"][name])


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_rate_counts_equal_reference_float(kind, per_channel):
    for seed in range(4):
        g = random_graph(kind, seed=seed, per_channel=per_channel)
        x = batch(g, seed=seed)
        res = simulate(g, x, record_spikes=True)
        ref = evaluate(g, x)
        total = 0
        for name, n in ref.counts.items():
            assert np.array_equal(res.counts[name], n), (seed, name)
            total += int(n.sum())
        assert total > 0
        np.testing.assert_array_equal(res.output, ref.output)
        assert res.steps == g.latency_steps
        assert_counts_consistent(res)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_rate_counts_equal_reference_fixed_point(kind, per_channel, quantised):
    for seed in range(3):
        g = quantised(random_graph(kind, seed=seed, per_channel=per_channel))
        x = batch(g, seed=seed)
        res = simulate(g, x, fixed_point=True)
        ref = evaluate(g, x)
        for name, n in ref.counts.items():
            assert np.array_equal(res.counts[name], n), (seed, name)
        assert sum(int(n.sum()) for n in ref.counts.values()) > 0
        np.testing.assert_array_equal(res.output, ref.output)


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_stream_step_for_step_equals_naive_loop(kind, fixed, naive, quantised):
    for seed in range(3):
        g = random_graph(kind, seed=seed, stream=True)
        assert any(p.coupling == "stream" for p in g.populations)
        if fixed:
            g = quantised(g)
        x = batch(g, seed=seed)
        res = simulate(g, x, record_spikes=True)
        spikes, out = naive(g, x)
        fired = 0
        for name, s in spikes.items():
            np.testing.assert_array_equal(res.spikes[name], np.moveaxis(s, 0, 1), err_msg=name)
            fired += int(s.sum())
        assert fired > 0
        if fixed:
            np.testing.assert_array_equal(res.output, out)
        else:
            np.testing.assert_allclose(res.output, out, rtol=1e-12, atol=1e-12)
        assert_counts_consistent(res)


@pytest.mark.parametrize("kind", KINDS)
def test_rate_per_step_delivery_equals_window_sum(kind, naive, quantised):
    """The one-projection-per-window shortcut changes nothing observable: spike trains
    equal the literal per-step loop (fixed point: exact; float: same spikes)."""
    for g in (random_graph(kind, seed=5, per_channel=True),
              quantised(random_graph(kind, seed=5, per_channel=True))):
        x = batch(g, seed=1)
        res = simulate(g, x, record_spikes=True)
        spikes, out = naive(g, x)
        for name, s in spikes.items():
            np.testing.assert_array_equal(res.spikes[name], np.moveaxis(s, 0, 1), err_msg=name)
        np.testing.assert_allclose(res.output, out, rtol=1e-12, atol=1e-12)


def test_sops_are_events_times_fanout(quantised):
    g = random_graph("residual", seed=2, per_channel=True)
    x = batch(g, 5)
    res = simulate(g, x)
    for pr in g.projections:
        if pr.analog:
            continue
        src = g.population(pr.source)
        # brute force: every event reaches the targets of a one-hot projection
        ones = Projection("o", pr.source, pr.target, pr.kind, np.ones_like(pr.weight),
                          pr.stride, pr.padding, pr.groups)
        per_event = np.zeros(src.shape, dtype=np.int64)
        for idx in np.ndindex(*src.shape):
            e = np.zeros((1, *src.shape))
            e[(0, *idx)] = 1
            per_event[idx] = int((project(ones, e) != 0).sum())
        assert res.sops[pr.name] == int((res.counts[pr.source].sum(0) * per_event).sum())
    enc = [pr for pr in g.projections if pr.analog][0]
    assert res.macs == 5 * int(enc.fanout(g.input.shape).sum())


@pytest.mark.parametrize("x_max", [15, 2**14, 2**40])  # float32, float64, int64 paths
def test_fixed_point_gemm_in_float_is_exact(x_max):
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(6, 4, 3, 3))
    pr = Projection("p", "a", "b", "conv", w, padding=(1, 1), weight_exp=3)
    counts = rng.integers(0, x_max + 1, size=(3, 4, 7, 7))
    exact = project(pr, counts, fixed_point=True)
    assert exact.dtype == np.int64
    got = Projector(pr, np.int64, exact_int=True)(counts, x_max)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, exact)


@pytest.mark.parametrize("stride,padding,groups", [((1, 1), (1, 1), 1), ((2, 2), (1, 1), 2),
                                                   ((2, 1), (0, 2), 4)])
def test_conv_kernel_equals_linalg(stride, padding, groups):
    from pseudosnn.compiler.linalg import conv2d

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 9, 7))
    w = rng.normal(size=(8, 4 // groups, 3, 3))
    np.testing.assert_allclose(conv2d_gemm(x, w, stride, padding, groups),
                               conv2d(x, w, stride, padding, groups), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_precision_agrees_with_float64(kind):
    g = random_graph(kind, seed=0, per_channel=True)
    x = batch(g, 16)
    r64, r32 = simulate(g, x), simulate(g, x, precision="float32")
    total = sum(int(n.size) for n in r64.counts.values())
    differ = sum(int((r64.counts[k] != r32.counts[k]).sum()) for k in r64.counts)
    assert differ <= total * 1e-3  # float32 rounding may move a near-tie, rarely
    np.testing.assert_allclose(r32.output, r64.output, atol=1e-3)
    with pytest.raises(SimulationError, match="precision"):
        simulate(g, x, precision="float16")


def test_backend_protocol():
    g = random_graph("cnn", seed=0)
    b = NumpyBackend()
    assert b.name == "numpy" and "fixed_point" in b.capabilities
    assert b.emit(g, None) == {}
    x = batch(g, 2)
    r1, r2 = b.run(g, x, record_spikes=True), simulate(g, x)
    for k in r2.counts:
        assert np.array_equal(r1.counts[k], r2.counts[k])
    assert r1.sops == r2.sops and r1.macs == r2.macs and r1.spikes is not None


def test_bad_input_shape_and_mode(quantised):
    g = random_graph("cnn", seed=0)
    with pytest.raises(SimulationError, match=r"expects \(B, 2, 8, 8\)"):
        simulate(g, np.zeros((3, 8, 8)))
    with pytest.raises(SimulationError, match="empty"):
        simulate(g, np.zeros((0, 2, 8, 8)))
    with pytest.raises(SimulationError, match="NaN"):
        simulate(g, np.full((1, 2, 8, 8), np.nan))
    with pytest.raises(SimulationError, match="float"):
        simulate(g, np.zeros((1, 2, 8, 8)), fixed_point=True)
    with pytest.raises(SimulationError, match="fixed-point"):
        simulate(quantised(g), np.zeros((1, 2, 8, 8)), fixed_point=False)
