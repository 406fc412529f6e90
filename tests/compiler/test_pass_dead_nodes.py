"""dead_nodes: nodes that never reach the output are removed."""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.passes.dead_nodes import remove_dead


def test_auxiliary_head_removed(rng):
    g = ir.Graph((3,), (
        ir.gemm("a", "input", rng.normal(0, 1, (4, 3))),
        ir.neuron("n", "a", 4),
        ir.gemm("aux", "n", rng.normal(0, 1, (2, 4))),
        ir.neuron("aux_n", "aux", 2),
        ir.gemm("out", "n", rng.normal(0, 1, (2, 4))),
    ), "out")
    out = remove_dead(g)
    assert [n.name for n in out.nodes] == ["a", "n", "out"]
    x = rng.normal(0, 1, (2, 3))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output)
