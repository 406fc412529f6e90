"""lower: 1/T_src folded per layer / per input channel / per dense column; per-neuron T into
a conv becomes event_scale (float only); the reference evaluator equals the IR."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.compiler import ir
from pseudosnn.compiler.lower import LoweringError, lower
from pseudosnn.compiler.spiking import reference
from pseudosnn.compiler.spiking.schedule import schedule


def _conv_net(rng, T0, groups=1):
    c = 4
    return ir.Graph((2, 5, 5), (
        ir.conv("c0", "input", rng.normal(0, 0.7, (c, 2, 3, 3)), rng.normal(0, 0.1, c),
                padding=(1, 1)),
        ir.neuron("n0", "c0", T0, out_scale=1.3),
        ir.conv("c1", "n0", rng.normal(0, 0.7, (c, c // groups, 3, 3)), None, padding=(1, 1),
                groups=groups),
        ir.neuron("n1", "c1", 5, scale=rng.uniform(0.5, 1.5, (c, 1, 1)), bias=0.05),
        ir.gemm("fc", "n1", rng.normal(0, 0.5, (3, c * 25)), rng.normal(0, 0.1, 3)),
    ), "fc")


@pytest.mark.parametrize("kind", ["layer", "channel", "neuron"])
@pytest.mark.parametrize("groups", [1, 2])
def test_reference_equals_ir(rng, kind, groups):
    T0 = {"layer": np.int64(3), "channel": rng.integers(1, 9, (4, 1, 1)),
          "neuron": rng.integers(1, 9, (4, 5, 5))}[kind]
    g = _conv_net(rng, T0, groups)
    sg = schedule(lower(g))
    sg.validate()
    proj = {p.name: p for p in sg.projections}
    assert proj["c0"].is_encoder and proj["c0"].delay == 0
    assert (proj["c1"].event_scale is not None) == (kind == "neuron")
    x = rng.normal(0, 1, (4, 2, 5, 5))
    ev, ref = ir.evaluate(g, x), reference.evaluate(sg, x)
    for name in ("n0", "n1"):
        np.testing.assert_array_equal(ref.counts[name], ev.counts[name])
    np.testing.assert_allclose(ref.output, ev.output, atol=1e-12)


def test_per_channel_fold_is_along_input_channels(rng):
    T0 = np.array([1, 2, 4, 8]).reshape(4, 1, 1)
    g = _conv_net(rng, T0)
    sg = lower(g)
    w = {p.name: p.weight for p in sg.projections}["c1"]
    scale = g.node("n1").params["scale"].reshape(4, 1, 1, 1)
    expected = g.node("c1").params["weight"] * 1.3 / T0.reshape(1, 4, 1, 1) * scale
    np.testing.assert_allclose(w, expected)


def test_per_neuron_T_into_conv_rejected_in_fixed_point(rng):
    g = _conv_net(rng, rng.integers(1, 9, (4, 5, 5)))
    with pytest.raises(LoweringError, match="per-neuron T feeding a convolution"):
        lower(g, fixed_point=True)


def test_non_canonical_input_is_named(rng):
    g = ir.Graph((2, 4, 4), (
        ir.conv("c0", "input", rng.normal(0, 1, (3, 2, 1, 1)), None),
        ir.neuron("n0", "c0", 3),
        ir.Node("p", "AvgPool", ("n0",), attrs={"kernel": (2, 2), "stride": (2, 2),
                                               "padding": (0, 0)}),
        ir.neuron("n1", "p", 3),
        ir.gemm("fc", "n1", np.ones((2, 12))),
    ), "fc")
    with pytest.raises(LoweringError, match="'n1' is fed by AvgPool node 'p'"):
        lower(g)
