"""avgpool_fusion: conv∘avgpool is one conv (avgpool k2s2 -> conv 3x3 pad 1 = 6x6 kernel,
stride 2, padding 2, K'[u, v] = K[u//2, v//2]/4), kept factorised (the trained kernel, a sum
pool and 1/4); pool/GAP -> flatten -> linear is one dense matrix, kept factorised too;
inexact fusions are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.compiler import ir
from pseudosnn.compiler.passes.avgpool_fusion import fuse_avgpool


def _pool(name, src, k, s, p=0):
    return ir.Node(name, "AvgPool", (src,), attrs={"kernel": (k, k), "stride": (s, s),
                                                   "padding": (p, p)})


def _net(rng, h, pool, conv_pad=1):
    return ir.Graph((2, h, h), (
        ir.conv("c0", "input", rng.normal(0, 0.5, (3, 2, 1, 1)), None),
        ir.neuron("n0", "c0", 4),
        pool,
        ir.conv("c1", pool.name, rng.normal(0, 0.5, (4, 3, 3, 3)), rng.normal(0, 0.1, 4),
                padding=(conv_pad, conv_pad)),
        ir.neuron("n1", "c1", 5),
        ir.gemm("fc", "n1", rng.normal(0, 1, (2, 4 * ((h // 2) ** 2)))),
    ), "fc")


def test_k2s2_then_conv3x3_is_the_documented_6x6_conv(rng):
    g = _net(rng, 8, _pool("p", "n0", 2, 2))
    out = fuse_avgpool(g)
    fused = out.node("c1")
    assert fused.inputs == ("n0",) and "p" not in [n.name for n in out.nodes]
    K = g.node("c1").params["weight"]
    assert fused.params["weight"] is K and fused.attrs["pool"] == ((2, 2), (2, 2), (0, 0))
    assert float(fused.params["in_scale"]) == 0.25
    composed = ir.plain(fused, (3, 8, 8))
    assert composed.params["weight"].shape == (4, 3, 6, 6)
    assert composed.attrs["stride"] == (2, 2) and composed.attrs["padding"] == (2, 2)
    u = np.arange(6)
    np.testing.assert_allclose(composed.params["weight"],
                               K[:, :, u[:, None] // 2, u[None] // 2] / 4)
    x = rng.normal(0, 1, (3, 2, 8, 8))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output,
                               atol=1e-12)


@pytest.mark.parametrize("h,k,s,p", [(9, 3, 2, 1), (12, 4, 4, 0), (6, 2, 2, 0)])
def test_other_exact_cases(rng, h, k, s, p):
    pool = _pool("p", "n0", k, s, p)
    g = ir.Graph((2, h, h), (
        ir.conv("c0", "input", rng.normal(0, 0.5, (3, 2, 1, 1)), None),
        ir.neuron("n0", "c0", 4), pool,
        ir.conv("c1", "p", rng.normal(0, 0.5, (4, 3, 3, 3)), None, padding=(1, 1)),
        ir.neuron("n1", "c1", 5), ir.Node("f", "Flatten", ("n1",)),
    ), "f")
    g = g.with_nodes([*g.nodes, ir.gemm("fc", "f", rng.normal(0, 1, (2, ir.infer_shapes(g)[
        "f"][0])))], output="fc")
    out = fuse_avgpool(g)
    x = rng.normal(0, 1, (2, 2, h, h))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output,
                               atol=1e-12)


def test_inexact_fusion_is_refused(rng):
    # pooled map of an even 8x8 input with a 3/2/1 pool: the padded conv would read pixels
    g = _net(rng, 8, _pool("p", "n0", 3, 2, 1))
    with pytest.raises(ir.IRError, match="cannot fuse average pooling 'p' into conv 'c1'"):
        fuse_avgpool(g)


@pytest.mark.parametrize("pool", ["avg", "gap"])
def test_pool_flatten_linear_is_one_dense_matrix(rng, pool):
    p = _pool("p", "n0", 2, 2) if pool == "avg" else ir.Node("p", "GlobalAvgPool", ("n0",))
    g = ir.Graph((2, 6, 6), (
        ir.conv("c0", "input", rng.normal(0, 0.5, (3, 2, 3, 3)), None, padding=(1, 1)),
        ir.neuron("n0", "c0", 4), p, ir.Node("f", "Flatten", ("p",)),
    ), "f")
    n = ir.infer_shapes(g)["f"][0]
    g = g.with_nodes([*g.nodes, ir.gemm("fc", "f", rng.normal(0, 1, (5, n)),
                                        rng.normal(0, 1, 5))], output="fc")
    out = fuse_avgpool(g)
    fc = out.node("fc")
    assert fc.inputs == ("n0",) and fc.params["weight"] is g.node("fc").params["weight"]
    assert ir.plain(fc, (3, 6, 6)).params["weight"].shape == (5, 3 * 6 * 6)
    x = rng.normal(0, 1, (3, 2, 6, 6))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output,
                               atol=1e-12)


def test_pool_of_a_current_is_refused_by_name(rng):
    g = ir.Graph((2, 8, 8), (
        ir.conv("stem", "input", rng.normal(0, 1, (3, 2, 3, 3)), None, padding=(1, 1)),
        _pool("p", "stem", 3, 2, 1),
        ir.neuron("n", "p", 4),
        ir.gemm("fc", "n", rng.normal(0, 1, (2, 48))),
    ), "fc")
    with pytest.raises(ir.IRError, match="'p' acts on the current of Conv 'stem'"):
        fuse_avgpool(g)


def test_preact_stem_conv_then_pool_is_one_conv(rng):
    """conv 7x7/2 pad 3 (+ bias) then avgpool 2: one conv, kernel 9, stride 4, padding 3."""
    g = ir.Graph((3, 16, 16), (
        ir.conv("stem", "input", rng.normal(0, 0.3, (4, 3, 7, 7)), rng.normal(0, 0.5, 4),
                stride=(2, 2), padding=(3, 3)),
        _pool("p", "stem", 2, 2),
        ir.neuron("n", "p", 4),
        ir.gemm("fc", "n", rng.normal(0, 1, (2, 64))),
    ), "fc")
    out = fuse_avgpool(g)
    fused = out.node("p")
    assert fused.op == "Conv" and fused.inputs == ("input",)
    assert fused.params["weight"].shape == (4, 3, 9, 9)
    assert fused.attrs["stride"] == (4, 4) and fused.attrs["padding"] == (3, 3)
    x = rng.normal(0, 1, (2, 3, 16, 16))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output,
                               atol=1e-12)


def test_strided_shortcut_on_a_current_and_linear_on_a_conv(rng):
    """1x1/2 conv on a conv's current (PreAct shortcut), and a linear layer reading a conv
    through flatten (dense W·C, biases carried)."""
    g = ir.Graph((2, 6, 6), (
        ir.conv("c0", "input", rng.normal(0, 1, (3, 2, 1, 1)), None),
        ir.neuron("n0", "c0", 4),
        ir.conv("c1", "n0", rng.normal(0, 0.5, (4, 3, 3, 3)), rng.normal(0, 0.3, 4),
                padding=(1, 1)),
        ir.conv("sc", "c1", rng.normal(0, 0.5, (5, 4, 1, 1)), rng.normal(0, 0.3, 5),
                stride=(2, 2)),
        ir.neuron("n1", "sc", 3),
        ir.conv("c2", "n1", rng.normal(0, 0.5, (2, 5, 3, 3)), rng.normal(0, 0.3, 2),
                padding=(1, 1), groups=1),
        ir.Node("f", "Flatten", ("c2",)),
        ir.gemm("fc", "f", rng.normal(0, 1, (3, 18)), rng.normal(0, 0.1, 3)),
    ), "fc")
    out = fuse_avgpool(g)
    assert out.node("sc").inputs == ("n0",) and out.node("fc").inputs == ("n1",)
    x = rng.normal(0, 1, (3, 2, 6, 6))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output,
                               atol=1e-12)


def test_two_linear_layers_without_a_neuron_are_one(rng):
    """Gemm∘Gemm (NIR files hold Affine -> Scale -> Affine chains): ``W2·W1``, bias
    ``W2·b1 + b2``, the same value."""
    g = ir.Graph((5,), (
        ir.gemm("a", "input", rng.normal(0, 1, (6, 5))), ir.neuron("n", "a", 4),
        ir.gemm("b", "n", rng.normal(0, 1, (7, 6)), rng.normal(0, 1, 7)),
        ir.gemm("c", "b", rng.normal(0, 1, (3, 7)), rng.normal(0, 1, 3))), "c")
    out = fuse_avgpool(g)
    assert [n.name for n in out.nodes] == ["a", "n", "c"] and out.node("c").inputs == ("n",)
    np.testing.assert_allclose(out.node("c").params["weight"],
                               g.node("c").params["weight"] @ g.node("b").params["weight"])
    x = rng.normal(0, 1, (3, 5))
    np.testing.assert_allclose(ir.evaluate(out, x).output, ir.evaluate(g, x).output,
                               rtol=1e-12, atol=1e-12)
