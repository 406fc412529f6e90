"""scale_fold: scale/θ into the rows, biases into the neuron, θ -> 1, v0 -> v0/θ, out_scale
into the consumers; identical spike counts."""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.passes.scale_fold import fold_scale


def test_fold_per_channel_scale_threshold_and_out_scale(rng):
    g = ir.Graph((2, 4, 4), (
        ir.conv("c", "input", rng.normal(0, 1, (3, 2, 3, 3)), rng.normal(0, 0.2, 3),
                padding=(1, 1)),
        ir.neuron("n", "c", rng.integers(1, 8, (3, 1, 1)), threshold=1.7, v0=0.3,
                  scale=rng.uniform(0.5, 2, (3, 1, 1)), bias=rng.normal(0, 0.1, (3, 1, 1)),
                  out_scale=2.5),
        ir.gemm("fc", "n", rng.normal(0, 1, (4, 48)), rng.normal(0, 1, 4)),
        ir.neuron("m", "fc", 6, scale=0.5, bias=0.1),
        ir.gemm("out", "m", rng.normal(0, 1, (2, 4))),
    ), "out")
    out = fold_scale(g)
    n = out.node("n")
    assert n.attrs["threshold"] == 1.0 and np.isclose(n.attrs["v0"], 0.3 / 1.7)
    assert n.attrs["out_scale"] == 1.0 and np.all(n.params["scale"] == 1)
    assert out.node("c").params.get("bias") is None
    x = rng.normal(0, 1, (6, 2, 4, 4))
    a, b = ir.evaluate(g, x), ir.evaluate(out, x)
    for name in ("n", "m"):
        np.testing.assert_array_equal(a.counts[name], b.counts[name])
    np.testing.assert_allclose(a.output, b.output, atol=1e-12)


def test_fold_into_every_term_of_a_sum(rng):
    g = ir.Graph((3,), (
        ir.gemm("a", "input", rng.normal(0, 1, (4, 3)), rng.normal(0, 1, 4)),
        ir.gemm("b", "input", rng.normal(0, 1, (4, 3)), rng.normal(0, 1, 4)),
        ir.Node("s", "Add", ("a", "b")),
        ir.neuron("n", "s", 5, scale=np.array([0.5, 1, 2, 3]), threshold=2.0),
        ir.gemm("o", "n", np.eye(4)),
    ), "o")
    out = fold_scale(g)
    x = rng.normal(0, 1, (5, 3))
    np.testing.assert_array_equal(ir.evaluate(g, x).counts["n"], ir.evaluate(out, x).counts["n"])
    assert all(out.node(t).params.get("bias") is None for t in ("a", "b"))
