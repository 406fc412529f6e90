"""IR: shapes, invariants and the rate-level evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.compiler import ir


def _small(rng, T=4):
    nodes = (
        ir.conv("c1", "input", rng.normal(0, 0.5, (3, 2, 3, 3)), rng.normal(0, 0.1, 3),
                padding=(1, 1)),
        ir.neuron("n1", "c1", T),
        ir.Node("f", "Flatten", ("n1",)),
        ir.gemm("fc", "f", rng.normal(0, 0.3, (4, 3 * 6 * 6)), np.zeros(4)),
    )
    return ir.Graph((2, 6, 6), nodes, "fc")


def test_shapes(rng):
    shapes = ir.check(_small(rng))
    assert shapes["c1"] == (3, 6, 6) and shapes["f"] == (108,) and shapes["fc"] == (4,)


def test_neuron_closed_form_matches_semantics(rng):
    from pseudosnn.compiler.spiking.semantics import rate_spike_count

    node = ir.neuron("n", "input", np.array([[3], [7]]), threshold=1.5, scale=0.8, bias=0.1)
    x = rng.normal(0.5, 1.0, size=(5, 2, 4))
    c = 0.8 * x + 0.1
    expected = rate_spike_count(c, np.array([[3], [7]]), 1.5, 0.75)
    np.testing.assert_array_equal(ir.neuron_counts(node, x), expected)


@pytest.mark.parametrize("bad,match", [
    (np.int64(0), "integers >= 1"), (np.int64(17), "T = 17 is above the limit of 16 steps"),
    (np.array([2.5]), "integers")])
def test_timesteps_out_of_range(rng, bad, match):
    g = _small(rng)
    n1 = g.node("n1")
    from dataclasses import replace

    g = g.with_nodes(replace(n, params={**n.params, "timesteps": bad}) if n is n1 else n
                     for n in g.nodes)
    with pytest.raises(ir.IRError, match=match):
        ir.check(g, max_timesteps=16)


def test_timesteps_beyond_the_default_limit_need_an_explicit_bound(rng):
    from dataclasses import replace

    g = _small(rng)
    big = ir.DEFAULT_MAX_TIMESTEPS + 1
    g = g.with_nodes(replace(n, params={**n.params, "timesteps": np.int64(big)})
                     if n.name == "n1" else n for n in g.nodes)
    with pytest.raises(ir.IRError, match=f"pass --max-timesteps {big}"):
        ir.check(g)
    ir.check(g, max_timesteps=big)


def test_nan_weights_named(rng):
    g = _small(rng)
    w = g.node("fc").params["weight"].copy()
    w[0, 0] = np.nan
    from dataclasses import replace

    g = g.with_nodes(replace(n, params={**n.params, "weight": w}) if n.name == "fc" else n
                     for n in g.nodes)
    with pytest.raises(ir.IRError, match="'fc'.*NaN or Inf"):
        ir.check(g)


@pytest.mark.parametrize("size,out", [(4, 3), (8, 1), (6, 3), (7, 3), (4, 2), (9, 3)])
def test_adaptive_pool_window_matches_torch(size, out):
    torch = pytest.importorskip("torch")
    k, s = ir.adaptive_pool_window(size, out)
    x = torch.randn(1, 2, size, size, dtype=torch.float64)
    a = torch.nn.functional.adaptive_avg_pool2d(x, out)
    b = torch.nn.functional.avg_pool2d(x, k, s)
    torch.testing.assert_close(a, b)


def test_adaptive_pool_window_refuses_uneven():
    assert ir.adaptive_pool_window(5, 3) is None
