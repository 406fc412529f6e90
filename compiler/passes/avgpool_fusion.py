"""Average-pool fusion into the following projection.

* ``Conv ∘ AvgPool`` is one convolution. Pooling ``(k1, s1, p1)`` then a conv ``K`` with
  ``(k2, s2, p2)`` is the conv ``K'[o, c, s1·i + u, s1·j + v] += K[o, c, i, j]/k1²``
  (``u, v < k1``) with kernel ``(k2 − 1)·s1 + k1``, stride ``s1·s2`` and padding
  ``p1 + p2·s1`` (e.g. avgpool k2 s2 then conv 3x3 pad 1: a 6x6 kernel, stride 2, pad 2).
  Exact when the zero padding of the conv only covers pooled positions that read input
  padding, checked per axis; otherwise the fusion is refused with a clear error. The
  fused conv is kept factorised (:mod:`..ir`): ``K`` with the sum pool as attr ``pool``
  and ``1/k1²`` in ``in_scale``; the lowering deploys the fused geometry.
* ``Gemm ∘ [Flatten] ∘ (AvgPool | GlobalAvgPool)`` is one dense matrix ``W' = W·P``
  (``P`` the pooling matrix, ``W``'s columns scattered over each window), kept factorised
  the same way.
* The same algebra composes any two convolutions with no neuron in between (a pool or a
  conv on a *current*, e.g. the PreAct-ResNet stem conv 7x7/2 then avgpool 2, or its
  strided 1x1 shortcut on a sum of currents): ``K'[o, d, s1·i + u, s1·j + v] +=
  Σ_c K2[o, c, i, j]·K1[c, d, u, v]``, bias ``b' = b2 + Σ_{c,i,j} K2[o,c,i,j]·b1[c]`` (only
  when the outer conv has no padding, else the padded border would miss ``b1``), and
  ``Gemm ∘ Conv`` is the dense matrix ``W·C`` built with the conv's adjoint, and
  ``Gemm ∘ Gemm`` (two linear layers with no neuron between, as NIR files can hold) is
  ``W2·W1`` with bias ``W2·b1 + b2``.

A composed node records how its weight was built (attr ``composition``, a
:class:`Composition`): its weight is not a trained array, and the artifact stores the
recipe (trained pieces) in its place, composed again on load by :meth:`Composition.weight`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pseudosnn.compiler.ir import Graph, IRError, Node, infer_shapes, plain
from pseudosnn.compiler.passes._rewrite import producers, prune

POOLS = ("AvgPool", "GlobalAvgPool")


@dataclass(frozen=True, eq=False)
class Composition:
    """The weight ``FUSIONS[fusion](outer, inner, *shapes)`` composes from two nodes with no
    neuron between (their weights trained arrays or compositions); ``result`` is that
    weight as the compiler built it (a node carries the recipe only while its weight is
    this very array)."""

    fusion: str
    outer: Node
    inner: Node
    shapes: tuple[tuple[int, ...], ...]
    result: np.ndarray

    def weight(self) -> np.ndarray:
        """The composed weight again, by the same code on the same pieces."""
        return FUSIONS[self.fusion](self.outer, self.inner, *self.shapes).params["weight"]

    def of(self, node: Node) -> bool:
        """Whether this recipe still describes ``node``'s weight."""
        return self.result is node.params.get("weight")


def composition_of(node: Node) -> Composition | None:
    """The recipe of ``node``'s weight, if it is a composition (see :class:`Composition`)."""
    c = node.attrs.get("composition")
    return c if c is not None and c.of(node) else None


def _recorded(node: Node, fusion: str, outer: Node, inner: Node, *shapes) -> Node:
    comp = Composition(fusion, outer, inner, tuple(tuple(map(int, s)) for s in shapes),
                       node.params["weight"])
    return replace(node, attrs={**node.attrs, "composition": comp})


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


def _times(scale, factor: float) -> np.ndarray:
    return np.asarray(factor if scale is None else np.asarray(scale) * factor)


def fuse_conv_pool(conv: Node, pool: Node, in_shape) -> Node:
    (k1h, k1w), (s1h, s1w), (p1h, p1w) = _pool_params(pool, in_shape)
    if conv.attrs.get("pool") is not None:  # a pool after a pool: compose the inner one
        conv = plain(conv, infer_shapes_of(pool, in_shape))
    k2h, k2w = np.asarray(conv.params["weight"]).shape[2:]
    (s2h, s2w), (p2h, p2w) = conv.attrs["stride"], conv.attrs["padding"]
    if not (_axis_ok(in_shape[1], k1h, s1h, p1h, k2h, s2h, p2h)
            and _axis_ok(in_shape[2], k1w, s1w, p1w, k2w, s2w, p2w)):
        raise IRError(
            f"cannot fuse average pooling {pool.name!r} into conv {conv.name!r} exactly for an "
            f"input of {tuple(in_shape)} (odd size or padding that reaches real pixels); "
            "use an even input size or pool after the conv")
    return replace(conv, inputs=pool.inputs, attrs={
        **conv.attrs, "pool": ((k1h, k1w), (s1h, s1w), (p1h, p1w))}, params={
        **conv.params, "in_scale": _times(conv.params.get("in_scale"), 1.0 / (k1h * k1w))})


def fuse_gemm_pool(gemm: Node, pool: Node, in_shape) -> Node:
    (kh, kw), (sh, sw), (ph, pw) = _pool_params(pool, in_shape)
    if gemm.attrs.get("pool") is not None:
        gemm = plain(gemm, infer_shapes_of(pool, in_shape))
    return replace(gemm, inputs=pool.inputs, attrs={
        **gemm.attrs, "pool": ((kh, kw), (sh, sw), (ph, pw))}, params={
        **gemm.params, "in_scale": _times(gemm.params.get("in_scale"), 1.0 / (kh * kw))})


def infer_shapes_of(node: Node, in_shape) -> tuple[int, ...]:
    """Output shape of one node on an input of ``in_shape``."""
    from pseudosnn.compiler.ir import node_shape

    return tuple(int(d) for d in node_shape(node, [tuple(in_shape)]))


def fuse_avgpool(graph: Graph) -> Graph:
    by_name, shapes = producers(graph), infer_shapes(graph)
    while True:
        out, changed = [], False
        for n in graph.nodes:
            new = _fuse_one(n, by_name, shapes)
            changed |= new is not n
            out.append(new)
        graph = prune(graph.with_nodes(out))
        if not changed:
            return graph
        by_name, shapes = producers(graph), infer_shapes(graph)


def _fuse_one(n: Node, by_name: dict[str, Node], shapes) -> Node:
    src = by_name.get(n.inputs[0]) if n.inputs else None
    if src is None:
        return n
    if n.op == "Gemm" and src.op == "Flatten":
        inner = by_name.get(src.inputs[0])
        if inner is not None and inner.op in (*POOLS, "Conv"):
            n, src = replace(n, inputs=src.inputs), inner
    if n.op == "Gemm" and src.op in POOLS:
        return fuse_gemm_pool(n, src, shapes[src.inputs[0]])
    if n.op == "Gemm" and src.op == "Conv":
        return fuse_gemm_conv(n, src, shapes[src.inputs[0]])
    if n.op == "Gemm" and src.op == "Gemm":
        return fuse_gemm_gemm(n, src, shapes[src.inputs[0]], shapes[src.name])
    if n.op == "Conv" and src.op in POOLS:
        return fuse_conv_pool(n, src, shapes[src.inputs[0]])
    if n.op in (*POOLS, "Conv") and src.op == "Conv":
        return compose_convs(n, src, shapes[src.inputs[0]], shapes[src.name])
    return n


def _full_kernel(node: Node, in_shape) -> tuple[np.ndarray, tuple, tuple, np.ndarray | None]:
    """``(W (C_out, C_in, kh, kw) with groups expanded, stride, padding, bias)``."""
    if node.op in POOLS:
        (kh, kw), stride, pad = _pool_params(node, in_shape)
        c = in_shape[0]
        w = np.zeros((c, c, kh, kw))
        w[np.arange(c), np.arange(c)] = 1.0 / (kh * kw)
        return w, stride, pad, None
    node = plain(node, in_shape)
    w = np.asarray(node.params["weight"], np.float64)
    groups = int(node.attrs.get("groups", 1))
    if groups > 1:
        co, cg = w.shape[:2]
        og = co // groups
        full = np.zeros((co, cg * groups, *w.shape[2:]))
        for g in range(groups):
            full[g * og:(g + 1) * og, g * cg:(g + 1) * cg] = w[g * og:(g + 1) * og]
        w = full
    b = node.params.get("bias")
    return (w, tuple(node.attrs["stride"]), tuple(node.attrs["padding"]),
            None if b is None else np.asarray(b, np.float64))


def compose_convs(outer: Node, inner: Node, in_shape, mid_shape) -> Node:
    """``outer ∘ inner`` (both conv-like, no neuron between) as one Conv named ``outer``."""
    w1, (s1h, s1w), (p1h, p1w), b1 = _full_kernel(inner, in_shape)
    w2, (s2h, s2w), (p2h, p2w), b2 = _full_kernel(outer, mid_shape)
    k1h, k1w = w1.shape[2:]
    k2h, k2w = w2.shape[2:]
    exact = _axis_ok(in_shape[1], k1h, s1h, p1h, k2h, s2h, p2h) and \
        _axis_ok(in_shape[2], k1w, s1w, p1w, k2w, s2w, p2w)
    if not exact or (b1 is not None and (p2h or p2w) and np.any(b1)):
        raise IRError(
            f"{outer.op} {outer.name!r} acts on the current of {inner.op} {inner.name!r} (no "
            f"neuron in between) and the two are not one convolution for an input of "
            f"{tuple(in_shape)} (padding reaches real pixels or a bias); put a neuron "
            "between them or change the input size")
    fused = np.zeros((w2.shape[0], w1.shape[1], (k2h - 1) * s1h + k1h, (k2w - 1) * s1w + k1w))
    for i in range(k2h):
        for j in range(k2w):
            fused[:, :, s1h * i:s1h * i + k1h, s1w * j:s1w * j + k1w] += np.tensordot(
                w2[:, :, i, j], w1, axes=(1, 0))
    bias = None if b2 is None else b2.copy()
    if b1 is not None:
        bias = (0 if bias is None else bias) + np.einsum("ocij,c->o", w2, b1)
    params = {"weight": fused} if bias is None else {"weight": fused, "bias": bias}
    return _recorded(Node(outer.name, "Conv", inner.inputs, attrs={
        "stride": (s1h * s2h, s1w * s2w), "padding": (p1h + p2h * s1h, p1w + p2w * s1w),
        "groups": 1}, params=params), "compose_convs", outer, inner, in_shape, mid_shape)


def fuse_gemm_gemm(outer: Node, inner: Node, in_shape, mid_shape) -> Node:
    """``W2·(W1·x + b1) + b2`` as one Gemm named ``outer``."""
    plain_outer, plain_inner = plain(outer, mid_shape), plain(inner, in_shape)
    w1, w2 = (np.asarray(g.params["weight"], np.float64) for g in (plain_inner, plain_outer))
    params = {**plain_outer.params, "weight": w2 @ w1}
    if plain_inner.params.get("bias") is not None:
        params["bias"] = w2 @ np.asarray(plain_inner.params["bias"], np.float64) + (
            plain_outer.params["bias"] if plain_outer.params.get("bias") is not None else 0.0)
    return _recorded(replace(plain_outer, inputs=inner.inputs, params=params),
                     "fuse_gemm_gemm", outer, inner, in_shape, mid_shape)


def fuse_gemm_conv(gemm: Node, conv: Node, in_shape) -> Node:
    """``W·C`` for a conv ``C`` (its adjoint scatters ``W``'s rows back over the input)."""
    w1, (sh, sw), (ph, pw), b1 = _full_kernel(conv, in_shape)
    c, h, wd = in_shape
    kh, kw = w1.shape[2:]
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    outer, gemm = gemm, plain(gemm, (w1.shape[0], oh, ow))
    w = np.asarray(gemm.params["weight"], np.float64).reshape(-1, w1.shape[0], oh, ow)
    dense = np.zeros((w.shape[0], c, h + 2 * ph, wd + 2 * pw))
    for u in range(kh):
        for v in range(kw):
            dense[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw] += np.tensordot(
                w, w1[:, :, u, v], axes=(1, 0)).transpose(0, 3, 1, 2)
    dense = dense[:, :, ph:ph + h, pw:pw + wd].reshape(w.shape[0], -1)
    params = {**gemm.params, "weight": dense}
    if b1 is not None:
        extra = w.sum(axis=(2, 3)) @ b1
        params["bias"] = extra + (gemm.params["bias"] if gemm.params.get("bias") is not None
                                  else 0.0)
    return _recorded(replace(gemm, inputs=conv.inputs, params=params), "fuse_gemm_conv",
                     outer, conv, in_shape)


FUSIONS = {"compose_convs": compose_convs, "fuse_gemm_conv": fuse_gemm_conv,
           "fuse_gemm_gemm": fuse_gemm_gemm}
"""The compositions a :class:`Composition` names."""
