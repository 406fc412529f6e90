"""flatten: Gemm∘Flatten reads the unflattened value (C order), weights unchanged."""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.passes.flatten import resolve_flatten


def test_flatten_removed(rng):
    g = ir.Graph((2, 3, 3), (
        ir.conv("c", "input", rng.normal(0, 1, (4, 2, 1, 1)), None),
        ir.neuron("n", "c", 3),
        ir.Node("f", "Flatten", ("n",)),
        ir.Node("f2", "Flatten", ("f",)),
        ir.gemm("fc", "f2", rng.normal(0, 1, (5, 36))),
    ), "fc")
    out = resolve_flatten(g)
    assert [n.op for n in out.nodes] == ["Conv", "Neuron", "Gemm"]
    assert out.node("fc").inputs == ("n",)
    np.testing.assert_array_equal(out.node("fc").params["weight"], g.node("fc").params["weight"])
    x = rng.normal(0, 1, (2, 2, 3, 3))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output)
