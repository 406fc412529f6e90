"""``compiler.linalg``: the conv GEMM against a literal loop, and the factorised form of
block-constant strided kernels (avgpool + conv) against the direct conv."""

import numpy as np
import pytest
from pseudosnn.compiler.spiking.graph import Projection
from pseudosnn.compiler.spiking.synapses import (
    block_kernel,
    conv2d,
    conv2d_block,
    project,
)


def conv_loop(x, w, stride, padding, groups):
    """Cross-correlation read literally off its definition."""
    b, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (wd + 2 * padding[1] - kw) // stride[1] + 1
    og = co // groups
    y = np.zeros((b, co, oh, ow), dtype=np.result_type(x, w))
    for o in range(co):
        g = o // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride[0]:i * stride[0] + kh,
                           j * stride[1]:j * stride[1] + kw]
                y[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    return y


def expand(wb, stride):
    return np.repeat(np.repeat(wb, stride[0], axis=2), stride[1], axis=3)


@pytest.mark.parametrize("stride,padding,groups", [
    ((1, 1), (1, 1), 1), ((2, 2), (1, 1), 2), ((2, 1), (0, 2), 4), ((1, 1), (0, 0), 8)])
def test_conv2d_equals_literal_loop(stride, padding, groups):
    rng = np.random.default_rng(0)
    cin = 8 if groups == 8 else 4
    x = rng.normal(size=(3, cin, 9, 7))
    w = rng.normal(size=(8, cin // groups, 3, 3) if groups != 8 else (8, 1, 3, 3))
    np.testing.assert_allclose(conv2d(x, w, stride, padding, groups),
                               conv_loop(x, w, stride, padding, groups), rtol=1e-12, atol=1e-12)
    xi, wi = rng.integers(0, 9, size=x.shape), rng.integers(-128, 128, size=w.shape)
    got = conv2d(xi, wi, stride, padding, groups)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, conv_loop(xi, wi, stride, padding, groups))


def test_block_kernel_detection():
    rng = np.random.default_rng(1)
    wb = rng.normal(size=(5, 3, 3, 3))
    w = expand(wb, (2, 2))
    np.testing.assert_array_equal(block_kernel(w, (2, 2)), wb)
    np.testing.assert_array_equal(block_kernel(expand(wb, (2, 1)), (2, 1)), wb)
    assert block_kernel(w, (1, 1)) is None  # stride 1: nothing to factor
    assert block_kernel(w, (3, 3)) is None  # not constant on 3x3 blocks
    assert block_kernel(w, (4, 4)) is None  # the stride does not divide the 6x6 kernel
    assert block_kernel(wb, (2, 2)) is None  # 3x3 stride 2: odd kernel, not blocks
    broken = w.copy()
    broken[2, 1, 5, 4] += 1e-9  # one tap off its block
    assert block_kernel(broken, (2, 2)) is None
    assert block_kernel(rng.normal(size=(5, 3, 6, 6)), (2, 2)) is None


@pytest.mark.parametrize("hw", [(8, 8), (7, 9), (6, 11), (9, 7)])
@pytest.mark.parametrize("padding", [(0, 0), (1, 1), (2, 2), (3, 1)])
@pytest.mark.parametrize("groups", [1, 2])
def test_factorised_block_conv_equals_direct(hw, padding, groups):
    """Odd and even sizes, even and odd paddings: sum-pool + small conv is the big conv."""
    rng = np.random.default_rng(hw[0] * 10 + padding[0])
    wb = rng.normal(size=(6, 4 // groups, 3, 3))
    w = expand(wb, (2, 2))
    x = rng.normal(size=(3, 4, *hw))
    direct = conv2d(x, w, (2, 2), padding, groups)
    got = conv2d_block(x, wb, (2, 2), padding, groups)
    assert got.shape == direct.shape
    np.testing.assert_allclose(got, direct, rtol=1e-12, atol=1e-12)
    xi, wi = rng.integers(0, 9, size=x.shape), rng.integers(-128, 128, size=wb.shape)
    exact = conv2d_block(xi, wi, (2, 2), padding, groups)
    assert exact.dtype == np.int64
    np.testing.assert_array_equal(exact, conv2d(xi, expand(wi, (2, 2)), (2, 2), padding, groups))


def test_project_factorises_block_convs_only():
    rng = np.random.default_rng(2)
    wb = rng.integers(-128, 128, size=(6, 4, 3, 3))
    pr = Projection("p", "a", "b", "conv", expand(wb, (2, 2)), stride=(2, 2), padding=(2, 2),
                    weight_exp=2)
    counts = rng.integers(0, 9, size=(3, 4, 7, 7))
    direct = conv2d(counts, pr.weight, (2, 2), (2, 2)) << 2
    np.testing.assert_array_equal(project(pr, counts, fixed_point=True), direct)
    # float: the factorised form is what project computes (the same bits for every caller)
    xf = rng.normal(size=(3, 4, 7, 7))
    got = project(pr, xf)
    np.testing.assert_array_equal(got, conv2d_block(xf, wb.astype(np.float64), (2, 2), (2, 2)))
    np.testing.assert_allclose(got, conv2d(xf, pr.weight, (2, 2), (2, 2)), rtol=1e-12,
                               atol=1e-12)
    # not block-constant / odd kernel: the direct conv, bit for bit
    for w, stride in ((rng.normal(size=(6, 4, 6, 6)), (2, 2)), (rng.normal(size=(6, 4, 3, 3)),
                                                                 (2, 2))):
        pr2 = Projection("q", "a", "b", "conv", w, stride=stride, padding=(1, 1))
        np.testing.assert_array_equal(project(pr2, xf), conv2d(xf, w, stride, (1, 1)))


def test_block_kernel_is_computed_once_and_weights_cannot_change_under_it():
    """The block kernel is cached on the (frozen) projection; its weights are read-only, so
    the cache can never go stale (an in-place write raises)."""
    rng = np.random.default_rng(3)
    w = expand(rng.normal(size=(2, 2, 3, 3)), (2, 2))
    pr = Projection("p", "a", "b", "conv", w, stride=(2, 2))
    first = pr.block_kernel
    assert first is not None and pr.block_kernel is first
    with pytest.raises(ValueError, match="read-only"):
        pr.weight[0, 0, 0, 0] = 1.0
    w[0, 0, 0, 0] += 1.0  # the caller's array is not the projection's
    assert pr.weight[0, 0, 0, 0] != w[0, 0, 0, 0]
    assert Projection("q", "a", "b", "conv", rng.normal(size=(2, 2, 6, 6)),
                      stride=(2, 2)).block_kernel is None
    assert Projection("r", "a", "b", "conv", w, stride=(1, 1)).block_kernel is None


def test_fused_avgpool_conv_equals_pool_then_conv():
    """What the compiler fuses: avgpool(2) then conv3x3 (padding 1) is the 6x6 stride-2
    conv with K'[u, v] = K[u//2, v//2] / 4 and padding 2; project computes it factorised."""
    rng = np.random.default_rng(4)
    k = rng.normal(size=(5, 3, 3, 3))
    x = rng.normal(size=(2, 3, 8, 8))
    pooled = x.reshape(2, 3, 4, 2, 4, 2).mean(axis=(3, 5))
    want = conv_loop(pooled, k, (1, 1), (1, 1), 1)
    pr = Projection("p", "a", "b", "conv", expand(k, (2, 2)) / 4, stride=(2, 2), padding=(2, 2))
    np.testing.assert_allclose(project(pr, x), want, rtol=1e-12, atol=1e-12)
