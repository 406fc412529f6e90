"""residual: linear ops distribute over Add (bias once); identity shortcuts get identity
projections; the network computes the same."""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.passes.residual import distribute_add, identity_projections


def _sew(rng):
    """SEW ADD: out = n2 + n1 (a sum of rates) read by the next conv, then GAP + fc."""
    return ir.Graph((2, 6, 6), (
        ir.conv("c1", "input", rng.normal(0, 0.5, (4, 2, 3, 3)), None, padding=(1, 1)),
        ir.neuron("n1", "c1", 3),
        ir.conv("c2", "n1", rng.normal(0, 0.5, (4, 4, 3, 3)), rng.normal(0, 0.1, 4),
                padding=(1, 1)),
        ir.neuron("n2", "c2", 5),
        ir.Node("add", "Add", ("n2", "n1")),
        ir.conv("c3", "add", rng.normal(0, 0.5, (4, 4, 3, 3)), rng.normal(0, 0.1, 4),
                padding=(1, 1)),
        ir.neuron("n3", "c3", 4),
        ir.Node("add2", "Add", ("n3", "add")),
        ir.Node("g", "GlobalAvgPool", ("add2",)),
        ir.Node("f", "Flatten", ("g",)),
        ir.gemm("fc", "f", rng.normal(0, 1, (3, 4)), rng.normal(0, 0.1, 3)),
    ), "fc")


def test_distribute_then_identity(rng):
    g = _sew(rng)
    out = identity_projections(distribute_add(g))
    x = rng.normal(0, 1, (3, 2, 6, 6))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output,
                               atol=1e-12)
    # the conv reading the sum became two projections into n3, only one with the bias
    terms = [out.node(i) for i in out.node(out.node("n3").inputs[0]).inputs]
    assert {t.inputs[0] for t in terms} == {"n1", "n2"}
    assert sum(t.params.get("bias") is not None for t in terms) == 1
    # no linear op reads an Add any more (only neurons read sums of projections)
    by_name = {m.name: m for m in out.nodes}
    for n in out.nodes:
        if n.op in ("Conv", "Gemm", "AvgPool", "GlobalAvgPool", "Flatten", "BatchNorm"):
            assert all(by_name.get(i) is None or by_name[i].op != "Add" for i in n.inputs)


def test_identity_projection_for_basic_block(rng):
    """ResNet block: sn2(conv2(...) + x) with x a population -> identity projection."""
    g = ir.Graph((3, 4, 4), (
        ir.conv("c0", "input", rng.normal(0, 0.5, (3, 3, 1, 1)), None),
        ir.neuron("n0", "c0", 4),
        ir.conv("c1", "n0", rng.normal(0, 0.5, (3, 3, 3, 3)), None, padding=(1, 1)),
        ir.Node("add", "Add", ("c1", "n0")),
        ir.neuron("n1", "add", 6),
        ir.gemm("fc", "n1", rng.normal(0, 1, (2, 48))),
    ), "fc")
    out = identity_projections(distribute_add(g))
    ident = [n for n in out.nodes if n.name.startswith("n0/identity")]
    assert len(ident) == 1 and ident[0].attrs["groups"] == 3
    x = rng.normal(0, 1, (2, 3, 4, 4))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output,
                               atol=1e-12)
