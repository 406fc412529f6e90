"""Scale/bias/threshold folding into the projections that feed a population.

A neuron fed by ``Σ_k (W_k x_k + b_k)`` with scale ``s``, bias ``β``, threshold ``θ`` and
initial potential ``v0`` computes ``n = clip(floor((T·(s·Σ(W_k x_k + b_k) + β) + v0)/θ), 0, T)``.
Folding gives ``W_k' = W_k·s/θ`` (per output row/channel), one bias ``β' = (s·Σ b_k + β)/θ``
on the neuron, ``v0' = v0/θ``, ``θ' = 1``, ``s' = 1``, and the same counts; the leaky and
hard-reset step is linear in ``v`` too, so a hard reset to ``v_reset`` becomes
``v_reset' = v_reset/θ`` (decays are unitless). The neuron's
``out_scale`` ``a`` (downstream sees ``a·n/T``) moves into every consumer: ``W' = W·a``.
Both stay factorised (:mod:`..ir`): ``s/θ`` multiplies the term's ``out_scale``, ``a`` its
``in_scale``; ``W`` is not touched.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pseudosnn.compiler.ir import Graph, IRError, Node, infer_shapes
from pseudosnn.compiler.passes._rewrite import fresh_name, producers, prune, use_counts

PROJ = ("Conv", "Gemm")


def _row_factor(node: Node, factor: np.ndarray, out_shape, where: str) -> Node:
    """``node`` (Conv/Gemm) with its rows (outputs) multiplied by ``factor`` broadcast over
    ``out_shape``: its ``out_scale`` times the per-channel/per-row factor."""
    f = np.broadcast_to(np.asarray(factor, np.float64), out_shape)
    if node.op == "Conv":  # one factor per output channel
        per_c = f.reshape(f.shape[0], -1)
        if not np.all(per_c == per_c[:, :1]):
            raise IRError(f"{where}: a per-neuron scale cannot be folded into a shared conv "
                          "kernel; use a per-channel or per-layer scale")
        rows = per_c[:, 0]
    else:
        rows = f.reshape(-1)
    out = node.params.get("out_scale")
    rows = rows.copy() if out is None else np.asarray(out) * rows
    return replace(node, params={**node.params, "out_scale": rows})


def fold_scale(graph: Graph) -> Graph:
    by_name, uses, shapes = producers(graph), use_counts(graph), infer_shapes(graph)
    taken = set(by_name)
    replaced: dict[str, Node] = {}
    extra: dict[str, list[Node]] = {}  # neuron name -> copies to insert before it
    for n in graph.nodes:
        if n.op != "Neuron":
            continue
        src = by_name.get(n.inputs[0])
        if src is None:
            continue
        terms = [by_name.get(i) for i in src.inputs] if src.op == "Add" else [src]
        if any(t is None or t.op not in PROJ for t in terms):
            continue
        theta = n.attrs["threshold"]
        s = np.asarray(n.params.get("scale", 1.0), np.float64) / theta
        shape = shapes[n.name]
        bias = np.asarray(n.params.get("bias", 0.0), np.float64) / theta
        new_terms = []
        for t in terms:
            b = t.params.get("bias")
            if b is not None:
                bshape = (-1, 1, 1) if len(shape) == 3 else (-1,)
                bias = bias + s * np.asarray(b).reshape(bshape)
            scaled = _row_factor(t, s, shape, f"neuron {n.name!r}")
            params = {k: v for k, v in scaled.params.items() if k != "bias"}
            shared = uses[t.name] > 1 or (src.op == "Add" and uses[src.name] > 1)
            name = fresh_name(taken, f"{t.name}/{n.name}") if shared else t.name
            new_terms.append(replace(t, name=name, params=params))
        if src.op == "Add":
            add_name = fresh_name(taken, f"{src.name}/{n.name}") if uses[src.name] > 1 \
                else src.name
            new_src = Node(add_name, "Add", tuple(t.name for t in new_terms))
            chain = [*new_terms, new_src]
        else:
            new_src = new_terms[0]
            chain = new_terms
        bshape = np.broadcast_shapes(np.shape(bias), (1,) * len(shape))
        attrs = {**n.attrs, "threshold": 1.0, "v0": n.attrs["v0"] / theta}
        if "v_reset" in attrs:
            attrs["v_reset"] = attrs["v_reset"] / theta
        new_n = replace(n, inputs=(new_src.name,), attrs=attrs,
            params={**n.params, "scale": np.ones(()), "bias": np.reshape(bias, bshape)})
        replaced[n.name] = new_n
        extra[n.name] = chain
    if not replaced:
        return _fold_out_scale(graph)
    # rebuild: copies and rewritten terms go right before their neuron
    rewritten = {t.name for ts in extra.values() for t in ts}
    out = []
    for n in graph.nodes:
        if n.name in replaced:
            out.extend(extra[n.name])
            out.append(replaced[n.name])
        elif n.name in rewritten:
            continue
        else:
            out.append(n)
    return _fold_out_scale(prune(graph.with_nodes(out)))


def _fold_out_scale(graph: Graph) -> Graph:
    scales: dict[str, float] = {}
    for n in graph.nodes:
        if n.op == "Neuron" and n.attrs.get("out_scale", 1.0) != 1.0:
            cons = graph.consumers(n.name)
            if cons and all(c.op in PROJ for c in cons) and graph.output != n.name:
                scales[n.name] = float(n.attrs["out_scale"])
    if not scales:
        return graph
    out = []
    for n in graph.nodes:
        if n.name in scales:
            n = replace(n, attrs={**n.attrs, "out_scale": 1.0})
        elif n.op in PROJ and n.inputs[0] in scales:
            a = scales[n.inputs[0]]
            old = n.params.get("in_scale")
            n = replace(n, params={**n.params, "in_scale": np.asarray(
                a if old is None else np.asarray(old) * a)})
        out.append(n)
    return graph.with_nodes(out)
