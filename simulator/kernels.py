"""The fastest exact synaptic kernel for each arithmetic mode (``synapses.Kernel``).

A kernel computes a factorised projection's base op (``base ⋆ z`` or ``z @ baseᵀ`` on the
prepared source values ``z``, see ``compiler/spiking/synapses.py``) or a materialised
projection as a whole. Per mode (measured on this machine's AVX-512 EPYC, 1 thread, the
zoo's conv shapes; ``benchmarks/simulate.py --kernels`` reruns the comparison):

* ``float64`` (the default, bit-identical to the reference): numpy im2col + BLAS GEMM,
  i.e. ``synapses``' own arithmetic with the weights cached in float64. onnxruntime has no
  float64 Conv; torch's float64 conv was 0.5-1.3x of it.
* ``float32``: onnxruntime's Conv (MLAS, NCHWc layout), one session per projection:
  1.2-1.8x (median 1.45x) numpy's float32 im2col GEMM, with equal or smaller rounding error
  (it is not bit-identical to numpy's float32, and float32 spikes may differ from float64
  ones near a threshold). Dense projections: numpy float32 GEMM.
* fixed point (integer sums, exact in any order): counts and spikes ``<= 127`` times int8
  weights as a uint8 im2col times onnxruntime ``MatMulInteger`` (int32 accumulators) while
  ``x_max·max_row_sum|W| < 2**31`` (3.6-5.8x the float32 GEMM); otherwise float32 (onnxruntime
  Conv) or float64 GEMMs while every partial sum stays below ``2**24`` / ``2**53`` (exact),
  else int64. ``MatMulInteger`` is self-tested once per process on extreme operands (inputs
  above 127 can saturate int16 pair sums on CPUs without AVX-512 VNNI; we never pass them).

onnxruntime sessions get :func:`.threads.current` intra-op threads and no spinning (a spinning
pool burns the cores other processes and BLAS need).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pseudosnn.compiler.spiking.graph import Projection
from pseudosnn.compiler.spiking.synapses import (
    IM2COL_CHUNK_BYTES,
    conv2d,
    conv2d_block,
    global_pool_columns,
    project,
    sum_pool,
)
from pseudosnn.simulator import threads

FLOAT32_EXACT_LIMIT = 2**24
FLOAT64_EXACT_LIMIT = 2**53
INT32_EXACT_LIMIT = 2**31
MATMUL_INTEGER_INPUT_MAX = 127
"""Largest uint8 input passed to MatMulInteger: MLAS's AVX2/AVX-512BW u8s8 kernel adds
products in int16 pairs (``vpmaddubsw``), exact for ``2·127·128 < 2**15``."""
MODES = ("float64", "float32", "fixed")


class Kernels:
    """The kernels of one arithmetic mode, with per-projection weights and sessions cached
    (``kernels(pr, z, x_max)``). ``mode``: ``float64``, ``float32`` or ``fixed``."""

    def __init__(self, mode: str):
        if mode not in MODES:
            raise ValueError(f"unknown kernel mode {mode!r}; one of {MODES}")
        self.mode = mode
        self._cache: dict[tuple, object] = {}

    def __call__(self, pr: Projection, z: np.ndarray, x_max: int = 1) -> np.ndarray:
        if self.mode == "float64":
            if pr.factors is None:
                return project(pr, z)
            return self._base(pr, z, np.float64)
        if self.mode == "float32":
            if pr.factors is None:
                return self._materialised_float32(pr, z)
            return self._base(pr, z, np.float32)
        return self._exact_int(pr, z, x_max)

    def _cached(self, key: tuple, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # --- float ------------------------------------------------------------------------
    def _base(self, pr: Projection, z: np.ndarray, dtype) -> np.ndarray:
        """``base ⋆ z`` (conv, the base's own stride/padding) or ``z @ baseᵀ`` (dense)."""
        w = self._cached((pr.name, "base", dtype), lambda: np.ascontiguousarray(
            pr.factors.base, dtype=dtype))
        if pr.kind == "dense":
            z = _as(z, dtype)
            return z.reshape(z.shape[0], -1) @ w.T
        stride, padding = pr.base_geometry()
        if dtype == np.float64:  # synapses' own arithmetic (its im2col copy casts counts)
            return conv2d(z, w, stride, padding, pr.groups)
        z = _as(z, dtype)
        return self._ort_conv(pr.name, "base", z, w, stride, padding, pr.groups)

    def _materialised_float32(self, pr: Projection, x: np.ndarray) -> np.ndarray:
        x = _as(x, np.float32)
        if pr.event_scale is not None:
            x = x * np.asarray(pr.event_scale, np.float32)
        if pr.kind == "dense":
            w = self._cached((pr.name, "w32"), lambda: np.ascontiguousarray(pr.weight,
                                                                            np.float32))
            return x.reshape(x.shape[0], -1) @ w.T
        block = pr.block_kernel
        if block is not None:  # sum-pool the stride's blocks, then the small kernel
            s = tuple(pr.stride)
            w = self._cached((pr.name, "block32"), lambda: np.asarray(block, np.float32))
            pooled = sum_pool(x, (s, s, tuple(pr.padding)))
            return self._ort_conv(pr.name, "block", pooled, w, (1, 1), (0, 0), pr.groups)
        w = self._cached((pr.name, "w32"), lambda: np.asarray(pr.weight, np.float32))
        return self._ort_conv(pr.name, "w", x, w, pr.stride, pr.padding, pr.groups)

    def _ort_conv(self, name: str, part: str, x, w, stride, padding, groups) -> np.ndarray:
        if groups == x.shape[1] and w.shape[1] == 1 and w.shape[0] == groups:
            return conv2d(x, w, stride, padding, groups)  # depthwise: numpy's einsum
        n = threads.current()
        sess = self._cached((name, part, "ort", n), lambda: _session(
            _conv_model(w, stride, padding, groups), n))
        return sess.run(None, {"x": np.ascontiguousarray(x)})[0]

    # --- fixed point ----------------------------------------------------------------------
    def _exact_int(self, pr: Projection, x: np.ndarray, x_max: int) -> np.ndarray:
        """``(W_int ⋆ x) << weight_exp`` exactly (the integer arithmetic of ``project``); a
        block-constant conv as sum pool + block kernel, a global-pool dense (repeated
        columns) as per-channel sums + its ``(out, C)`` matrix."""
        block = pr.block_kernel if pr.kind == "conv" else None
        columns = None
        if pr.kind == "dense" and x.ndim == 4:
            columns = self._cached((pr.name, "columns"), lambda: global_pool_columns(
                pr.weight, x.shape[1:]))
        if columns is not None:
            area, x = x.shape[2] * x.shape[3], np.asarray(x, np.int64).sum(axis=(2, 3))
            pr, block = replace(pr, weight=columns), None
        else:
            area = 1 if block is None else int(np.prod(pr.stride))
        w = pr.weight if block is None else block
        row_sum = self._cached((pr.name, "row_sum"), lambda: _max_row_sum(w))
        x_max = max(int(x_max), 1) * area
        bound = row_sum * x_max
        if x_max <= MATMUL_INTEGER_INPUT_MAX and bound < INT32_EXACT_LIMIT and pr.groups == 1 \
                and matmul_integer_ok():
            y = self._matmul_integer(pr, x, w, block is not None)
        elif bound < FLOAT64_EXACT_LIMIT:
            dtype = np.float32 if bound < FLOAT32_EXACT_LIMIT else np.float64
            wd = self._cached((pr.name, "int-as", dtype), lambda: np.asarray(w, dtype))
            xd = _as(x, dtype)
            if pr.kind == "dense":
                y = xd.reshape(xd.shape[0], -1) @ wd.T
            elif block is not None:
                y = conv2d_block(xd, wd, pr.stride, pr.padding, pr.groups)
            else:
                y = conv2d(xd, wd, pr.stride, pr.padding, pr.groups)
            y = y.astype(np.int64)  # exact integers: the cast does not round
        else:
            return project(pr, x, fixed_point=True)
        return np.left_shift(y, pr.weight_exp) if pr.weight_exp else y

    def _matmul_integer(self, pr: Projection, x: np.ndarray, w: np.ndarray,
                        block: bool) -> np.ndarray:
        n = threads.current()
        if pr.kind == "dense":
            sess = self._cached((pr.name, "mmi", n), lambda: _session(_mmi_model(
                np.ascontiguousarray(np.asarray(w, np.int8).T)), n))
            return _run_mmi(sess, np.asarray(x, np.uint8).reshape(x.shape[0], -1))
        kh, kw = w.shape[2:]
        sess = self._cached((pr.name, "mmi", n), lambda: _session(_mmi_model(
            np.ascontiguousarray(np.asarray(w, np.int8).transpose(2, 3, 1, 0).reshape(
                -1, w.shape[0]))), n))
        if block:
            s = tuple(pr.stride)
            x = sum_pool(np.asarray(x, np.int64), (s, s, tuple(pr.padding)))
            return conv_mmi(sess, x, w.shape[0], (kh, kw), (1, 1), (0, 0))
        return conv_mmi(sess, x, w.shape[0], (kh, kw), pr.stride, pr.padding)


def _as(x: np.ndarray, dtype) -> np.ndarray:
    """``x`` in ``dtype`` (``astype``: ``np.asarray(x, dtype)`` is 10-20x slower from bool)."""
    return np.asarray(x).astype(dtype, copy=False)


def _max_row_sum(w: np.ndarray) -> int | float:
    """``max_o Σ_i |W[o, i]|``: bounds every partial sum per unit of input (int8 weights
    through int16, not a float64 copy eight times their size)."""
    w = np.asarray(w).reshape(w.shape[0], -1)
    a = np.abs(w.astype(np.int16 if w.dtype == np.int8 else np.float64))
    return float(a.sum(axis=1, dtype=np.float64).max(initial=0))


def conv_mmi(sess, x: np.ndarray, co: int, kernel, stride, padding) -> np.ndarray:
    """Integer conv as a uint8 im2col (NHWC, K ordered ``(u, v, c)``) times the session's
    int8 matrix; batch chunks of about ``IM2COL_CHUNK_BYTES`` columns; int64 NCHW out."""
    b, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    xp = np.zeros((b, h + 2 * ph, wd + 2 * pw, c), np.uint8)
    xp[:, ph:ph + h, pw:pw + wd] = x.transpose(0, 2, 3, 1)
    k = kh * kw * c
    rows = int(max(1, min(b, IM2COL_CHUNK_BYTES // max(1, k * oh * ow))))
    out = np.empty((b, co, oh, ow), np.int64)
    for r0 in range(0, b, rows):
        r1 = min(b, r0 + rows)
        win = sliding_window_view(xp[r0:r1], (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
        cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(-1, k)
        y = _run_mmi(sess, cols).reshape(r1 - r0, oh, ow, co)
        out[r0:r1] = y.transpose(0, 3, 1, 2)
    return out


def _run_mmi(sess, a: np.ndarray) -> np.ndarray:
    return sess.run(None, {"a": a})[0].astype(np.int64)


# --- onnxruntime models -----------------------------------------------------------------
def _session(model: bytes, n_threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = n_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # NCHWc conv
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _model(node, inputs, outputs, inits) -> bytes:
    from onnx import helper

    graph = helper.make_graph([node], "kernel", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _conv_model(w: np.ndarray, stride, padding, groups: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], strides=list(stride),
                            pads=[*padding, *padding], group=groups,
                            kernel_shape=list(w.shape[2:]))
    c_in = w.shape[1] * groups
    return _model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                       ["N", c_in, "H", "W"])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                 ["N", w.shape[0], "OH", "OW"])],
                  [numpy_helper.from_array(np.asarray(w, np.float32), "w")])


def _mmi_model(w_i8: np.ndarray) -> bytes:
    """``y = a @ w`` with uint8 ``a`` (rows, K) and int8 ``w`` (K, C_out): int32 sums."""
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
    return _model(node, [helper.make_tensor_value_info("a", TensorProto.UINT8,
                                                       ["M", w_i8.shape[0]])],
                  [helper.make_tensor_value_info("y", TensorProto.INT32,
                                                 ["M", w_i8.shape[1]])],
                  [numpy_helper.from_array(np.asarray(w_i8, np.int8), "w")])


@cache
def matmul_integer_ok() -> bool:
    """Whether onnxruntime's MatMulInteger sums the largest operands we pass exactly (run once
    per process): inputs at :data:`MATMUL_INTEGER_INPUT_MAX`, weights at -128 and 127, a sum
    near the int32 bound's order, against int64 numpy."""
    rng = np.random.default_rng(0)
    k = 4608
    a = np.where(rng.random((16, k)) < 0.9, MATMUL_INTEGER_INPUT_MAX,
                 rng.integers(0, MATMUL_INTEGER_INPUT_MAX + 1, (16, k))).astype(np.uint8)
    w = np.where(rng.random((k, 8)) < 0.5, -128, 127).astype(np.int8)
    w[:, 0], w[:, 1] = -128, 127  # one all-negative and one all-positive column
    try:
        got = _run_mmi(_session(_mmi_model(w), 1), a)
    except Exception:  # an onnxruntime without the op: the float kernels take over
        return False
    return bool(np.array_equal(got, a.astype(np.int64) @ w.astype(np.int64)))
