"""bn_fold: W' = W·γ/σ (kept factorised: W and out_scale γ/σ), b' = (b − μ)·γ/σ + β; the
same network, no BatchNorm left."""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.passes.bn_fold import fold_batchnorm


def _bn(name, src, c, rng):
    return ir.Node(name, "BatchNorm", (src,), attrs={"eps": 1e-3}, params={
        "gamma": rng.uniform(0.5, 2, c), "beta": rng.normal(0, 0.3, c),
        "mean": rng.normal(0, 0.3, c), "var": rng.uniform(0.2, 2, c)})


def test_fold_conv_and_gemm(rng):
    g = ir.Graph((2, 5, 5), (
        ir.conv("c", "input", rng.normal(0, 1, (3, 2, 3, 3)), rng.normal(0, 1, 3)),
        _bn("bn", "c", 3, rng),
        ir.neuron("n", "bn", 5),
        ir.gemm("fc", "n", rng.normal(0, 1, (4, 27))),
        _bn("bn2", "fc", 4, rng),
    ), "bn2")
    out = fold_batchnorm(g)
    assert [n.op for n in out.nodes] == ["Conv", "Neuron", "Gemm"]
    assert out.output == "bn2"
    x = rng.normal(0, 1, (4, 2, 5, 5))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output, atol=1e-12)
    # the algebra, checked on the conv's numbers
    bn, conv = g.node("bn"), g.node("c")
    k = bn.params["gamma"] / np.sqrt(bn.params["var"] + 1e-3)
    assert out.node("bn").params["weight"] is conv.params["weight"]  # the trained weight
    np.testing.assert_allclose(out.node("bn").params["out_scale"], k)
    np.testing.assert_allclose(ir.plain(out.node("bn"), (2, 5, 5)).params["weight"],
                               conv.params["weight"] * k[:, None, None, None])
    np.testing.assert_allclose(out.node("bn").params["bias"],
                               (conv.params["bias"] - bn.params["mean"]) * k + bn.params["beta"])


def test_batchnorm_after_a_neuron_stays(rng):
    g = ir.Graph((3,), (ir.neuron("n", "input", 4), _bn("bn", "n", 3, rng),
                        ir.gemm("fc", "bn", np.eye(3))), "fc")
    assert [n.op for n in fold_batchnorm(g).nodes] == ["Neuron", "BatchNorm", "Gemm"]
