"""What a projection computes, written once: numpy synaptic arithmetic shared by the
reference evaluator, the simulator and the Lava backend.

``project(pr, x)`` maps source values ``x`` of shape ``(B, *source_shape)`` to target
currents ``(B, *target_shape)``: dense ``x_flat @ W.T``; conv a cross-correlation
(PyTorch's ``conv2d``) with stride, zero padding and groups. Integer inputs with integer
weights stay exact (int64); fixed-point contributions are shifted left by ``weight_exp``.

A conv whose kernel is constant on ``s0 x s1`` blocks with stride ``(s0, s1)`` (what the
compiler makes of avgpool + conv) is computed factorised, exactly as written:
``y = conv(sumpool_{s0 x s1}(xpad), K_block, stride 1, no padding)`` with
``K_block[u, v] = K[s0*u, s1*v]`` (``s0*s1`` times fewer multiply-accumulates). Equal to
the direct conv in exact arithmetic; in float it is the definition ``project`` uses, so
every caller of ``project`` gets the same bits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pseudosnn.compiler.spiking.graph import AnalogStem, Projection, SpikePool, SpikingGraph

IM2COL_CHUNK_BYTES = 1 << 20
"""im2col columns built per batch chunk of about this size (cache blocking: the copy and
the GEMM reading it stay in L2/L3). Measured here, 1 thread, batch 64: 3-25 % faster than
the whole batch at once on the benchmark's convs; 0.5-2 MiB equally good."""


def conv2d(x: np.ndarray, w: np.ndarray, stride=(1, 1), padding=(0, 0), groups: int = 1):
    """``y[b, o, i, j] = sum_{c, u, v} w[o, c, u, v] * xpad[b, g(o)*Cg + c, i*s0 + u, j*s1 + v]``
    computed per group as stacked GEMMs ``W (og, Cg*kh*kw) @ cols (b, Cg*kh*kw, OH*OW)``
    over batch chunks, whose result is already NCHW (the fastest of four layouts measured
    here, see ``simulator/kernels.py``)."""
    b, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    dtype = np.result_type(x, w)
    w = w.astype(dtype, copy=False)
    og = co // groups
    if groups == c and cg == 1 and og == 1:  # depthwise (identity shortcuts): no group loop
        x = np.pad(x.astype(dtype, copy=False),
                   ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
        win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, :: stride[0], :: stride[1]]
        return np.einsum("bchwuv,cuv->bchw", win, w[:, 0]).astype(dtype, copy=False)
    hp, wp = h + 2 * padding[0], wd + 2 * padding[1]
    oh, ow = (hp - kh) // stride[0] + 1, (wp - kw) // stride[1] + 1
    k = cg * kh * kw
    rows = int(max(1, min(b, IM2COL_CHUNK_BYTES // max(1, k * oh * ow * dtype.itemsize))))
    # the zero-padded input of one chunk (borders written once) and its im2col columns;
    # copying into them also casts x (counts, spikes) to the GEMM dtype
    xp = np.zeros((rows, c, hp, wp), dtype=dtype)
    cols = np.empty((rows, cg, kh, kw, oh, ow), dtype=dtype)
    out = np.empty((b, co, oh * ow), dtype=dtype)
    for r0 in range(0, b, rows):
        r1 = min(b, r0 + rows)
        m = r1 - r0
        xp[:m, :, padding[0]:padding[0] + h, padding[1]:padding[1] + wd] = x[r0:r1]
        win = sliding_window_view(xp[:m], (kh, kw), axis=(2, 3))[:, :, :: stride[0],
                                                                   :: stride[1]]
        for g in range(groups):
            wg = w[g * og:(g + 1) * og].reshape(og, k)
            np.copyto(cols[:m], win[:, g * cg:(g + 1) * cg].transpose(0, 1, 4, 5, 2, 3))
            cm = cols[:m].reshape(m, k, oh * ow)
            if groups == 1:
                np.matmul(wg, cm, out=out[r0:r1])
            else:
                out[r0:r1, g * og:(g + 1) * og] = wg @ cm
    return out.reshape(b, co, oh, ow)


def block_kernel(w: np.ndarray, stride: tuple[int, int]) -> np.ndarray | None:
    """``K_block`` if conv kernel ``w`` is constant on ``stride``-sized blocks (and the
    stride is not 1x1 and divides the kernel), else None."""
    s0, s1 = int(stride[0]), int(stride[1])
    kh, kw = w.shape[2:]
    if s0 * s1 < 2 or kh % s0 or kw % s1:
        return None
    wb = w[:, :, ::s0, ::s1]
    if not np.array_equal(np.repeat(np.repeat(wb, s0, axis=2), s1, axis=3), w):
        return None
    return np.ascontiguousarray(wb)


def conv2d_block(x: np.ndarray, wb: np.ndarray, stride=(2, 2), padding=(0, 0),
                 groups: int = 1) -> np.ndarray:
    """The conv with kernel ``repeat(wb, stride)`` and that stride, factorised: sum-pool
    the zero-padded input over ``stride``-sized blocks (trailing rows/columns no window
    reaches are dropped), then a stride-1 unpadded conv with ``wb``."""
    s0, s1 = int(stride[0]), int(stride[1])
    if padding[0] or padding[1]:
        x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    ph, pw = x.shape[2] // s0, x.shape[3] // s1
    x = x.astype(np.result_type(x, wb), copy=False)
    pooled = x[:, :, : ph * s0: s0, : pw * s1: s1].copy()
    for a in range(s0):  # summed in row-major block order (strided adds beat a reduce)
        for b in range(s1):
            if a or b:
                pooled += x[:, :, a: ph * s0: s0, b: pw * s1: s1]
    return conv2d(pooled, wb, (1, 1), (0, 0), groups)


def project(pr: Projection, x: np.ndarray, fixed_point: bool = False) -> np.ndarray:
    """Currents delivered by projection ``pr`` for source values ``x`` (events, counts or
    the analog input), batch first."""
    if pr.event_scale is not None:
        x = x * pr.event_scale
    w = pr.weight
    if fixed_point and not pr.is_encoder:
        x = x.astype(np.int64, copy=False)
        w = w.astype(np.int64, copy=False)
    if pr.kind == "dense":  # cast first: matmul on mixed dtypes skips BLAS
        y = x.reshape(x.shape[0], -1).astype(np.result_type(x, w), copy=False) @ w.T
    else:
        wb = pr.block_kernel
        if wb is not None:
            y = conv2d_block(x, wb.astype(w.dtype, copy=False), pr.stride, pr.padding,
                             pr.groups)
        else:
            y = conv2d(x, w, pr.stride, pr.padding, pr.groups)
    if fixed_point and not pr.is_encoder and pr.weight_exp:
        y = np.left_shift(y, pr.weight_exp)
    return y


def max_pool(x: np.ndarray, kernel, stride, padding, pad_value=-np.inf) -> np.ndarray:
    """``y[b, c, i, j] = max_{u < k0, v < k1} xpad[b, c, i*s0 + u, j*s1 + v]`` on ``(B, C, H, W)``
    with padding taps ``pad_value`` (``-inf``: PyTorch's ``MaxPool2d``). On bool spikes it
    is the OR over each window (pad with ``False``: :func:`spike_pool`)."""
    (k0, k1), (s0, s1), (p0, p1) = kernel, stride, padding
    if p0 or p1:
        x = np.pad(x, ((0, 0), (0, 0), (p0, p0), (p1, p1)), constant_values=pad_value)
    oh, ow = (x.shape[2] - k0) // s0 + 1, (x.shape[3] - k1) // s1 + 1
    out = None
    for u in range(k0):  # one strided slice per tap: faster than reducing a window view
        for v in range(k1):
            tap = x[:, :, u:u + s0 * (oh - 1) + 1:s0, v:v + s1 * (ow - 1) + 1:s1]
            out = tap.copy() if out is None else np.maximum(out, tap, out=out)
    return out


def spike_pool(pool: SpikePool, spikes: np.ndarray) -> np.ndarray:
    """The pooled spikes of one step: the OR over each window of bool ``(B, C, H, W)``."""
    return max_pool(spikes, pool.kernel, pool.stride, pool.padding, pad_value=False)


def stem_forward(stem: AnalogStem, x: np.ndarray) -> np.ndarray:
    """The host-side analog stem on ``(B, *stem.in_shape)``, float64 (see :class:`AnalogStem`)."""
    x = np.asarray(x, dtype=np.float64)
    if stem.weight is not None:
        x = conv2d(x, np.asarray(stem.weight, np.float64), stem.stride, stem.padding,
                   stem.groups)
        if stem.bias is not None:
            x = x + np.asarray(stem.bias, np.float64).reshape(-1, 1, 1)
    return max_pool(x, stem.pool_kernel, stem.pool_stride, stem.pool_padding)


def frame_targets(graph: SpikingGraph) -> set[str]:
    """Encoder targets that receive event frames one per step (stream-coupled targets of a
    framed input); every other target receives the current of the frames' time mean."""
    if not graph.input.frames:
        return set()
    return {pr.target for pr in graph.projections if pr.is_encoder
            and getattr(graph.node(pr.target), "coupling", "rate") == "stream"}


def encode_fixed(current: np.ndarray, units_per_float: float) -> np.ndarray:
    """Analog encoder current in a population's integer units: ``floor(c*u + 1/2)``."""
    return np.floor(current * units_per_float + 0.5).astype(np.int64)


def encoder_currents(graph: SpikingGraph, x: np.ndarray,
                     apply: Callable[[Projection, np.ndarray], np.ndarray] | None = None
                     ) -> dict[str, np.ndarray]:
    """The current every node receives from the analog input ``x`` (B, *sample shape),
    summed over its encoder projections: ``project(pr, x)`` in float64 (or ``apply``, e.g.
    a float32 kernel), and in a fixed-point graph each projection's current rounded to the
    target's integer units by :func:`encode_fixed` (per projection, as deployed). The
    analog stem, if any, runs first (float64). Event frames: targets in
    :func:`frame_targets` get one current per frame, ``(B, F, *shape)``; the others the
    current of the frames' time mean."""
    x = np.asarray(x, dtype=np.float64)
    if graph.input.stem is not None:
        x = stem_forward(graph.input.stem, x)
    framed = frame_targets(graph)
    mean = x.mean(axis=1) if graph.input.frames else x
    out: dict[str, np.ndarray] = {}
    for pr in graph.projections:
        if not pr.is_encoder:
            continue
        xin = x.reshape(-1, *x.shape[2:]) if pr.target in framed else mean
        c = project(pr, xin) if apply is None else apply(pr, xin)
        if graph.fixed_point:
            c = encode_fixed(c, graph.node(pr.target).units_per_float)
        if pr.target in framed:
            c = c.reshape(x.shape[0], x.shape[1], *c.shape[1:])
        out[pr.target] = out[pr.target] + c if pr.target in out else c
    return out
