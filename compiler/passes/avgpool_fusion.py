"""Average-pool fusion into the following projection.

* ``Conv ∘ AvgPool`` is one convolution. Pooling ``(k1, s1, p1)`` then a conv ``K`` with
  ``(k2, s2, p2)`` is the conv ``K'[o, c, s1·i + u, s1·j + v] += K[o, c, i, j]/k1²``
  (``u, v < k1``) with kernel ``(k2 − 1)·s1 + k1``, stride ``s1·s2`` and padding
  ``p1 + p2·s1`` (e.g. avgpool k2 s2 then conv 3x3 pad 1: a 6x6 kernel, stride 2, pad 2).
  Exact when the zero padding of the conv only covers pooled positions that read input
  padding, checked per axis; otherwise the fusion is refused with a clear error.
* ``Gemm ∘ [Flatten] ∘ (AvgPool | GlobalAvgPool)`` is one dense matrix ``W' = W·P``
  (``P`` the pooling matrix), built by scattering ``W``'s columns over each window.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import Graph, IRError, Node, infer_shapes
from ._rewrite import producers, prune

POOLS = ("AvgPool", "GlobalAvgPool")


def _pool_params(pool: Node, in_shape) -> tuple[tuple, tuple, tuple]:
    if pool.op == "GlobalAvgPool":
        return tuple(in_shape[1:]), tuple(in_shape[1:]), (0, 0)
    return tuple(pool.attrs["kernel"]), tuple(pool.attrs["stride"]), tuple(pool.attrs["padding"])


def _axis_ok(size: int, k1: int, s1: int, p1: int, k2: int, s2: int, p2: int) -> bool:
    """Whether conv∘pool equals the fused conv along one axis of length ``size``."""
    o1 = (size + 2 * p1 - k1) // s1 + 1
    o2 = (o1 + 2 * p2 - k2) // s2 + 1
    kf, sf, pf = (k2 - 1) * s1 + k1, s1 * s2, p1 + p2 * s1
    if (size + 2 * pf - kf) // sf + 1 != o2:
        return False
    if p2 == 0:
        return True
    left_ok = -s1 - p1 + k1 - 1 < 0  # pooled position -1 reads only left padding
    right_ok = o1 * s1 - p1 >= size  # pooled position o1 reads only right padding
    return left_ok and right_ok


def fuse_conv_pool(conv: Node, pool: Node, in_shape) -> Node:
    (k1h, k1w), (s1h, s1w), (p1h, p1w) = _pool_params(pool, in_shape)
    w = np.asarray(conv.params["weight"])
    co, cg, k2h, k2w = w.shape
    (s2h, s2w), (p2h, p2w) = conv.attrs["stride"], conv.attrs["padding"]
    if not (_axis_ok(in_shape[1], k1h, s1h, p1h, k2h, s2h, p2h)
            and _axis_ok(in_shape[2], k1w, s1w, p1w, k2w, s2w, p2w)):
        raise IRError(
            f"cannot fuse average pooling {pool.name!r} into conv {conv.name!r} exactly for an "
            f"input of {tuple(in_shape)} (odd size or padding that reaches real pixels); "
            "use an even input size or pool after the conv")
    kfh, kfw = (k2h - 1) * s1h + k1h, (k2w - 1) * s1w + k1w
    fused = np.zeros((co, cg, kfh, kfw))
    for i in range(k2h):
        for j in range(k2w):
            fused[:, :, s1h * i:s1h * i + k1h, s1w * j:s1w * j + k1w] += \
                w[:, :, i:i + 1, j:j + 1] / (k1h * k1w)
    return replace(conv, inputs=pool.inputs, attrs={
        **conv.attrs, "stride": (s1h * s2h, s1w * s2w),
        "padding": (p1h + p2h * s1h, p1w + p2w * s1w)}, params={**conv.params, "weight": fused})


def fuse_gemm_pool(gemm: Node, pool: Node, in_shape) -> Node:
    (kh, kw), (sh, sw), (ph, pw) = _pool_params(pool, in_shape)
    c, h, wd = in_shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    w = np.asarray(gemm.params["weight"]).reshape(-1, c, oh, ow)
    dense = np.zeros((w.shape[0], c, h + 2 * ph, wd + 2 * pw))
    for u in range(kh):
        for v in range(kw):
            dense[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw] += w / (kh * kw)
    dense = dense[:, :, ph:ph + h, pw:pw + wd].reshape(w.shape[0], -1)
    return replace(gemm, inputs=pool.inputs, params={**gemm.params, "weight": dense})


def fuse_avgpool(graph: Graph) -> Graph:
    by_name, shapes = producers(graph), infer_shapes(graph)
    out = []
    for n in graph.nodes:
        src = by_name.get(n.inputs[0]) if n.inputs else None
        if n.op == "Gemm" and src is not None and src.op == "Flatten":
            inner = by_name.get(src.inputs[0])
            if inner is not None and inner.op in POOLS:
                n = fuse_gemm_pool(n, inner, shapes[inner.inputs[0]])
        elif n.op == "Gemm" and src is not None and src.op in POOLS:
            n = fuse_gemm_pool(n, src, shapes[src.inputs[0]])
        elif n.op == "Conv" and src is not None and src.op in POOLS:
            n = fuse_conv_pool(n, src, shapes[src.inputs[0]])
        out.append(n)
    return prune(graph.with_nodes(out))
