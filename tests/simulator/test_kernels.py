"""The simulator's kernels (``simulator/kernels.py``) compute what ``synapses.project``
defines: float64 bit for bit, float32 (onnxruntime) to float32 rounding, fixed point
exactly, on every projection geometry the compiler emits."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.compiler.spiking.graph import Factors, Projection
from pseudosnn.compiler.spiking.synapses import project
from pseudosnn.simulator.kernels import Kernels, matmul_integer_ok


def _projections(rng):
    """Materialised convs (grouped, depthwise, strided, block-constant, per-event scale),
    factorised ones (pool, scales, groups) and dense ones, on a (4, 9, 9) source."""
    w = rng.normal(0, 0.3, (6, 4, 3, 3))
    block = np.repeat(np.repeat(rng.normal(0, 0.3, (6, 4, 3, 3)), 2, axis=2), 2, axis=3)
    pool = ((2, 2), (2, 2), (0, 0))
    return [
        Projection("conv", "a", "b", "conv", w, padding=(1, 1)),
        Projection("grouped", "a", "b", "conv", w[:, :2], stride=(2, 2), padding=(1, 1),
                   groups=2),
        Projection("depthwise", "a", "b", "conv", rng.normal(size=(4, 1, 1, 1)), groups=4),
        Projection("block", "a", "b", "conv", block, stride=(2, 2), padding=(2, 2)),
        Projection("event_scale", "a", "b", "conv", w, padding=(1, 1),
                   event_scale=rng.uniform(0.5, 2, (4, 9, 9))),
        Projection("dense", "a", "b", "dense", rng.normal(size=(5, 4 * 81))),
        Projection("factors", "a", "b", "conv", stride=(2, 2), padding=(2, 2), factors=Factors(
            w.astype(np.float32), rng.uniform(0.5, 2, (4, 1, 1)), rng.uniform(0.5, 2, 6), pool,
            (4, 9, 9))),
        Projection("factors_grouped", "a", "b", "conv", groups=2, factors=Factors(
            w[:, :2].astype(np.float32), np.asarray(0.25), None, None, (4, 9, 9))),
        Projection("factors_dense", "a", "b", "dense", factors=Factors(
            rng.normal(size=(5, 36)).astype(np.float32), None, rng.uniform(0.5, 2, 5),
            ((4, 4), (2, 2), (0, 0)), (4, 9, 9))),
    ]


@pytest.mark.parametrize("i", range(9))
def test_float_kernels_compute_the_projection(i):
    rng = np.random.default_rng(i)
    pr = _projections(np.random.default_rng(0))[i]
    counts = rng.integers(0, 6, (3, 4, 9, 9))
    ref = project(pr, counts)
    np.testing.assert_array_equal(project(pr, counts, kernel=Kernels("float64")), ref)
    got = project(pr, counts, kernel=Kernels("float32"), dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("x_max", [1, 9, 127, 128])  # MatMulInteger up to 127
@pytest.mark.parametrize("kind", ["conv", "strided", "block", "dense", "global_pool"])
def test_fixed_point_kernel_is_exact(kind, x_max):
    rng = np.random.default_rng(x_max)
    w = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    pr = {"conv": Projection("c", "a", "b", "conv", w, padding=(1, 1), weight_exp=2),
          "strided": Projection("s", "a", "b", "conv", w, stride=(2, 2), padding=(1, 1)),
          "block": Projection("k", "a", "b", "conv", np.repeat(np.repeat(w, 2, 2), 2, 3),
                              stride=(2, 2), padding=(2, 2), weight_exp=1),
          "dense": Projection("d", "a", "b", "dense", w.reshape(6, -1)[:, :30]),
          # global pooling + linear: columns repeated over each channel's 9x9 map
          "global_pool": Projection("g", "a", "b", "dense", np.repeat(w[:, :, 0, 0], 81, 1),
                                    weight_exp=3)}[kind]
    shape = (3, 30) if kind == "dense" else (3, 4, 9, 9)
    counts = rng.integers(0, x_max + 1, shape)
    counts.flat[0] = x_max
    got = Kernels("fixed")(pr, counts, x_max)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, project(pr, counts, fixed_point=True))


def test_matmul_integer_self_test_passes_here():
    """This machine's onnxruntime sums uint8 x int8 exactly (else the float kernels run)."""
    assert matmul_integer_ok()
