"""Numpy synaptic arithmetic shared by the reference evaluator, the simulator and the
Lava backend: the one place that says what a projection computes.

``project(pr, x)`` maps source values ``x`` of shape ``(B, *source_shape)`` to target
currents ``(B, *target_shape)``: dense ``x_flat @ W.T``; conv a cross-correlation
(PyTorch's ``conv2d``) with stride, zero padding and groups. Integer inputs with integer
weights stay exact (int64); fixed-point contributions are shifted left by ``weight_exp``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .graph import Projection


def conv2d(x: np.ndarray, w: np.ndarray, stride=(1, 1), padding=(0, 0), groups: int = 1):
    """``y[b, o, i, j] = sum_{c, u, v} w[o, c, u, v] * xpad[b, g(o)*Cg + c, i*s0 + u, j*s1 + v]``
    computed as one GEMM per group over an im2col view."""
    b, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    if padding[0] or padding[1]:
        x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, :: stride[0], :: stride[1]]
    oh, ow = win.shape[2], win.shape[3]
    og = co // groups
    if groups == c and cg == 1 and og == 1:  # depthwise (identity shortcuts): no group loop
        return np.einsum("bchwuv,cuv->bchw", win, w[:, 0]).astype(np.result_type(x, w),
                                                                    copy=False)
    out = np.empty((b, co, oh, ow), dtype=np.result_type(x, w))
    for g in range(groups):
        xg = win[:, g * cg:(g + 1) * cg]  # (b, cg, oh, ow, kh, kw)
        cols = xg.transpose(0, 2, 3, 1, 4, 5).reshape(b * oh * ow, cg * kh * kw)
        wg = w[g * og:(g + 1) * og].reshape(og, cg * kh * kw)
        out[:, g * og:(g + 1) * og] = (cols @ wg.T).reshape(b, oh, ow, og).transpose(0, 3, 1, 2)
    return out


def project(pr: Projection, x: np.ndarray, fixed_point: bool = False) -> np.ndarray:
    """Currents delivered by projection ``pr`` for source values ``x`` (events, counts or
    the analog input), batch first."""
    if pr.event_scale is not None:
        x = x * pr.event_scale
    w = pr.weight
    if fixed_point and not pr.analog:
        x = x.astype(np.int64, copy=False)
        w = w.astype(np.int64, copy=False)
    if pr.kind == "dense":
        y = x.reshape(x.shape[0], -1) @ w.T
    else:
        y = conv2d(x, w, pr.stride, pr.padding, pr.groups)
    if fixed_point and not pr.analog and pr.weight_exp:
        y = np.left_shift(y, pr.weight_exp)
    return y


def encode_fixed(current: np.ndarray, scale: float) -> np.ndarray:
    """Analog encoder current in a population's integer units: ``floor(c*scale + 1/2)``."""
    return np.floor(current * scale + 0.5).astype(np.int64)
