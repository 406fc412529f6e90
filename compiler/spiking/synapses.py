"""What a projection computes, written once: numpy synaptic arithmetic shared by the
reference evaluator, the simulator and the Lava backend.

``project(pr, x)`` maps source values ``x`` of shape ``(B, *source_shape)`` to target
currents ``(B, *target_shape)``: dense ``x_flat @ W.T``; conv a cross-correlation
(PyTorch's ``conv2d``) with stride, zero padding and groups. Integer inputs with integer
weights stay exact (int64); fixed-point contributions are shifted left by ``weight_exp``.

A projection that carries its trained :class:`~.graph.Factors` is computed from them,
``y = out_scale ⊙ base(sumpool(in_scale ⊙ x))`` (the trained layer's arithmetic: pool then
the small kernel, a residual's summands through one layer; a scalar ``in_scale`` of a lone
projection multiplies the output: ``(out_scale·in_scale) ⊙ base(sumpool(x))``); the
deployed, fused weight is :func:`compose` d from them only for executors that need it. The
summands of one trained layer into one target are computed together (:func:`drive`):
``out ⊙ base(Σ_k sumpool_k(in_k ⊙ x_k))``, one GEMM instead of one per summand.

A materialised conv whose kernel is constant on ``s0 x s1`` blocks with stride ``(s0, s1)``
(what the compiler makes of avgpool + conv, quantised) is computed factorised, exactly as
written: ``y = conv(sumpool_{s0 x s1}(xpad), K_block, stride 1, no padding)`` with
``K_block[u, v] = K[s0*u, s1*v]`` (``s0*s1`` times fewer multiply-accumulates).

Each factorisation equals the deployed projection in exact arithmetic; in float it is the
definition ``project`` and :func:`drive` use, so every caller gets the same bits (the
reference evaluator and the simulator in float64 are bit-identical by construction).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pseudosnn.compiler.spiking.graph import (
    AnalogStem,
    Pool,
    Projection,
    SpikePool,
    SpikingGraph,
)

Kernel = Callable[[Projection, np.ndarray, int], np.ndarray]
"""``kernel(pr, z, x_max)``: the base op of a factorised projection on its prepared input
``z`` (or the whole projection of a materialised one), e.g. a float32 or exact-integer
kernel of the simulator; ``x_max`` bounds the source values (counts <= T)."""

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


def global_pool_columns(w: np.ndarray, source_shape: tuple[int, ...]) -> np.ndarray | None:
    """``W_c`` (out, C) if the dense matrix ``w`` (out, C*H*W) acting on a (C, H, W) source
    is ``repeat(W_c, H*W, axis=1)``, i.e. global average pooling fused into a linear layer
    (what quantisation leaves of a factorised one); else None. Then ``x_flat @ w.T`` is
    ``x.sum((2, 3)) @ W_c.T``."""
    if len(source_shape) != 3 or source_shape[1] * source_shape[2] == 1:
        return None
    c = source_shape[0]
    w3 = w.reshape(w.shape[0], c, -1)
    if not np.array_equal(w3, np.broadcast_to(w3[:, :, :1], w3.shape)):
        return None
    return np.ascontiguousarray(w3[:, :, 0])


def conv2d_block(x: np.ndarray, wb: np.ndarray, stride=(2, 2), padding=(0, 0),
                 groups: int = 1) -> np.ndarray:
    """The conv with kernel ``repeat(wb, stride)`` and that stride, factorised: sum-pool
    the zero-padded input over ``stride``-sized blocks (trailing rows/columns no window
    reaches are dropped), then a stride-1 unpadded conv with ``wb``."""
    s = (int(stride[0]), int(stride[1]))
    x = x.astype(np.result_type(x, wb), copy=False)
    return conv2d(sum_pool(x, (s, s, tuple(padding))), wb, (1, 1), (0, 0), groups)


def sum_pool(x: np.ndarray, pool: Pool) -> np.ndarray:
    """``Σ_{u<kh, v<kw} xpad[:, :, s0·i + u, s1·j + v]`` (zero padding ``p``), the window's taps
    added in row-major order (strided adds: exact on integer-valued inputs)."""
    (kh, kw), (s0, s1), (p0, p1) = pool
    if p0 or p1:
        x = np.pad(x, ((0, 0), (0, 0), (p0, p0), (p1, p1)))
    oh, ow = (x.shape[2] - kh) // s0 + 1, (x.shape[3] - kw) // s1 + 1
    out = x[:, :, : s0 * (oh - 1) + 1: s0, : s1 * (ow - 1) + 1: s1].copy()
    for u in range(kh):
        for v in range(kw):
            if u or v:
                out += x[:, :, u: u + s0 * (oh - 1) + 1: s0, v: v + s1 * (ow - 1) + 1: s1]
    return out


def scaled_source(pr: Projection, x: np.ndarray, dtype) -> np.ndarray:
    """``in_scale ⊙ event_scale ⊙ x`` in ``dtype`` (a fresh array: callers add into it)."""
    z = np.asarray(x).astype(dtype)  # (np.array(x, dtype) is 20x slower from bool)
    for f in (pr.event_scale, None if pr.factors is None else pr.factors.in_scale):
        if f is not None:
            z *= np.asarray(f, dtype=dtype)
    return z


def base_input(pr: Projection, x: np.ndarray, dtype, alone: bool = False) -> np.ndarray:
    """What a factorised projection's base reads: ``sumpool(in_scale ⊙ x)`` (fresh). Alone
    (not summed with other summands) with a scalar ``in_scale`` and no event scale, the
    scale applies to the output instead (:func:`apply_base`) and the base reads
    ``sumpool(x)``: one pass less, and integer counts stay integers."""
    if alone and _scalar_in_scale(pr) is not None:
        z = np.asarray(x)
        if pr.factors.pool is None:
            return z
        return sum_pool(z.astype(dtype) if z.dtype == np.bool_ else z, pr.factors.pool)
    z = scaled_source(pr, x, dtype)
    return z if pr.factors.pool is None else sum_pool(z, pr.factors.pool)


def _scalar_in_scale(pr: Projection) -> float | None:
    s = pr.factors.in_scale
    if pr.event_scale is not None or (s is not None and s.size != 1):
        return None
    return 1.0 if s is None else float(s.reshape(()))


def apply_base(pr: Projection, z: np.ndarray, kernel: Kernel | None = None,
               x_max: int = 1, dtype=np.float64, alone: bool = False) -> np.ndarray:
    """``out_scale ⊙ base(z)`` of a factorised projection on its base's input ``z`` (see
    :func:`base_input`; summed over a group; alone: ``(out_scale·in_scale) ⊙ base(z)``);
    ``kernel`` computes the base op (else numpy in ``dtype``)."""
    f = pr.factors
    if kernel is not None:
        y = kernel(pr, z, x_max)
    elif pr.kind == "dense":
        z = z.astype(dtype, copy=False)
        y = z.reshape(z.shape[0], -1) @ f.base.astype(dtype, copy=False).T
    else:
        stride, padding = pr.base_geometry()
        y = conv2d(z, f.base.astype(dtype, copy=False), stride, padding, pr.groups)
    out = f.out_scale
    scalar = _scalar_in_scale(pr) if alone else None
    if scalar is not None and scalar != 1.0:
        out = np.asarray(scalar if out is None else out * scalar)
    if out is not None:
        y *= out.astype(y.dtype, copy=False).reshape((-1,) + (1,) * (y.ndim - 2))
    return y


def project(pr: Projection, x: np.ndarray, fixed_point: bool = False,
            kernel: Kernel | None = None, x_max: int = 1, dtype=np.float64) -> np.ndarray:
    """Currents delivered by projection ``pr`` for source values ``x`` (events, counts or
    the analog input), batch first. ``kernel`` (optional) computes the base op of a
    factorised projection, or the whole of a materialised one."""
    if pr.factors is not None:
        return apply_base(pr, base_input(pr, x, dtype, alone=True), kernel, x_max, dtype,
                          alone=True)
    if kernel is not None:
        return kernel(pr, x, x_max)
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


def same_layer(a: Projection, b: Projection) -> bool:
    """Whether ``a`` and ``b`` deploy one trained layer the same way (same base, output
    scale, base geometry and base input shape), so that ``a(x) + b(y) = out ⊙
    base(pool_a(in_a x) + pool_b(in_b y))``."""
    fa, fb = a.factors, b.factors
    if fa is None or fb is None or a.is_encoder or b.is_encoder:
        return False
    same = (a.kind, a.base_geometry(), a.groups, a.target, base_input_shape(a)) == \
        (b.kind, b.base_geometry(), b.groups, b.target, base_input_shape(b))
    return same and _same_array(fa.base, fb.base) and _same_array(fa.out_scale, fb.out_scale)


def base_input_shape(pr: Projection) -> tuple[int, ...]:
    """Shape of one sample of what a factorised projection's base reads."""
    shape, pool = tuple(pr.factors.source_shape), pr.factors.pool
    if pool is None:
        return shape
    (kh, kw), (sh, sw), (ph, pw) = pool
    return (shape[0], (shape[1] + 2 * ph - kh) // sh + 1, (shape[2] + 2 * pw - kw) // sw + 1)


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or (a.shape == b.shape and np.array_equal(a, b))


_GROUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def synapse_groups(graph: SpikingGraph, target: str) -> list[list[Projection]]:
    """The non-encoder projections into ``target``, grouped by :func:`same_layer` (groups
    in order of their first member in ``graph.incoming``, members in that order). Computed
    once per graph."""
    cache = _GROUPS.setdefault(graph, {})
    if target not in cache:
        groups: list[list[Projection]] = []
        for pr in graph.incoming(target):
            if pr.is_encoder:
                continue
            home = next((g for g in groups if same_layer(g[0], pr)), None)
            if home is None:
                groups.append([pr])
            else:
                home.append(pr)
        cache[target] = groups
    return cache[target]


def drive(graph: SpikingGraph, target: str, values: Mapping[str, np.ndarray], *,
          fixed_point: bool = False, kernel: Kernel | None = None, dtype=np.float64,
          initial: np.ndarray | None = None) -> np.ndarray | None:
    """``initial`` plus the current every non-encoder projection into ``target`` delivers
    for its source's ``values`` (spike counts): per :func:`synapse_groups` group
    ``out ⊙ base(Σ_k sumpool_k(in_k ⊙ x_k))`` (one projection: ``project`` itself), groups
    added in order. None when nothing reaches ``target``."""
    total = initial
    for group in synapse_groups(graph, target):
        x_max = max(graph.event_source(pr.source).t_max for pr in group)
        if len(group) == 1:
            y = project(group[0], values[group[0].source], fixed_point, kernel, x_max, dtype)
        else:
            z = base_input(group[0], values[group[0].source], dtype)
            for pr in group[1:]:
                z += base_input(pr, values[pr.source], dtype)
            y = apply_base(group[0], z, kernel, x_max, dtype)
        total = y if total is None else total + y
    return total


def compose(pr: Projection) -> np.ndarray:
    """The deployed weight of a factorised projection: the pool and the base as one fused
    kernel or matrix (as ``compiler/passes/avgpool_fusion`` builds it), times the scales."""
    f = pr.factors
    base = np.asarray(f.base, dtype=np.float64)
    if pr.kind == "dense":
        if f.pool is not None:
            base = _pooled_dense(base, f.pool, f.source_shape)
        w = base
    else:
        (k1h, k1w), (s1h, s1w), _ = f.pool or ((1, 1), (1, 1), (0, 0))
        co, cg, kh, kw = base.shape
        w = np.zeros(pr.weight_shape)
        for i in range(kh):
            for j in range(kw):
                w[:, :, s1h * i:s1h * i + k1h, s1w * j:s1w * j + k1w] += base[:, :, i:i + 1,
                                                                                j:j + 1]
    if f.out_scale is not None:
        w = w * f.out_scale.reshape((-1,) + (1,) * (w.ndim - 1))
    if f.in_scale is not None:
        w = w * _in_scale_of_weight(pr, np.asarray(f.in_scale, np.float64), w.shape)
    return w


def _pooled_dense(base: np.ndarray, pool: Pool, source_shape) -> np.ndarray:
    """The dense matrix on the unpooled ``(C, H, W)`` source of ``base`` after a sum pool."""
    (kh, kw), (sh, sw), (ph, pw) = pool
    c, h, wd = source_shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    b = base.reshape(-1, c, oh, ow)
    dense = np.zeros((b.shape[0], c, h + 2 * ph, wd + 2 * pw))
    for u in range(kh):
        for v in range(kw):
            dense[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw] += b
    return dense[:, :, ph:ph + h, pw:pw + wd].reshape(b.shape[0], -1)


def _in_scale_of_weight(pr: Projection, f: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``in_scale`` laid out along the weight's input axis (dense: per source neuron;
    conv: per input channel of each output channel's group)."""
    if pr.kind == "dense":
        return np.broadcast_to(f, pr.factors.source_shape).reshape(1, -1)
    co, cg = shape[:2]
    per_c = np.broadcast_to(f.reshape(-1), (cg * pr.groups,))
    og = co // pr.groups
    idx = (np.arange(co)[:, None] // og) * cg + np.arange(cg)[None, :]
    return per_c[idx][:, :, None, None]


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
