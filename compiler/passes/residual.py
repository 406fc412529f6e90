"""Residual additions become several projections into one population.

Linear operators distribute over a sum: ``L(a + b) = L(a) + L_0(b)`` (``L_0`` without its
bias, so the bias is added once). Applied until no Conv/Gemm/AvgPool/GlobalAvgPool/
Flatten/BatchNorm reads an ``Add``; nested sums are flattened. A summand that is a
neuron's (or a max pool's) output itself (an identity shortcut, SEW ADD) gets an identity
projection: a
depthwise 1x1 convolution of ones (``(C,H,W)`` values) or an identity matrix (flat ones),
so that every population's input is a sum of Conv/Gemm projections.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pseudosnn.compiler.ir import INPUT, POOL_OPS, Graph, Node, infer_shapes
from pseudosnn.compiler.passes._rewrite import fresh_name, producers, prune

DISTRIBUTES = ("Conv", "Gemm", "AvgPool", "GlobalAvgPool", "Flatten", "BatchNorm")


def _without_bias(node: Node) -> Node:
    if node.op == "BatchNorm":  # (x − μ)·k + β: the affine part once, the linear part again
        p = node.params
        return replace(node, params={**p, "mean": np.zeros_like(p["mean"]),
                                     "beta": np.zeros_like(p["beta"])})
    if node.params.get("bias") is None:
        return node
    return replace(node, params={k: v for k, v in node.params.items() if k != "bias"})


def distribute_add(graph: Graph) -> Graph:
    changed = True
    while changed:
        changed = False
        by_name = producers(graph)
        taken = set(by_name)
        out: list[Node] = []
        for n in graph.nodes:
            src = by_name.get(n.inputs[0]) if n.inputs else None
            if n.op in DISTRIBUTES and src is not None and src.op == "Add":
                parts = []
                for k, summand in enumerate(src.inputs):
                    piece = n if k == 0 else _without_bias(n)
                    parts.append(replace(piece, name=fresh_name(taken, f"{n.name}/{k}"),
                                         inputs=(summand,)))
                out.extend(parts)
                out.append(Node(n.name, "Add", tuple(p.name for p in parts)))
                changed = True
            elif n.op == "Add" and any(by_name.get(i) is not None and by_name[i].op == "Add"
                                       for i in n.inputs):
                flat: list[str] = []
                for i in n.inputs:
                    s = by_name.get(i)
                    flat.extend(s.inputs if s is not None and s.op == "Add" else (i,))
                out.append(replace(n, inputs=tuple(flat)))
                changed = True
            else:
                out.append(n)
        graph = prune(graph.with_nodes(out))
    return graph


def identity_projections(graph: Graph) -> Graph:
    """Give every bare neuron (or input) summand of a neuron/readout input an identity
    projection, so that populations are fed by Conv/Gemm only."""
    by_name, shapes = producers(graph), infer_shapes(graph)
    taken = set(by_name)
    out: list[Node] = []

    def ident(src: str) -> Node:
        shape = shapes[src]
        name = fresh_name(taken, f"{src}/identity")
        if len(shape) == 3:
            return Node(name, "Conv", (src,), attrs={"stride": (1, 1), "padding": (0, 0),
                                                     "groups": shape[0]},
                        params={"weight": np.ones((shape[0], 1, 1, 1))})
        return Node(name, "Gemm", (src,), params={"weight": np.eye(int(np.prod(shape)))})

    def needs(src: str) -> bool:  # a value a projection reads as it is
        s = by_name.get(src)
        return src == INPUT or (s is not None and s.op in ("Neuron", *POOL_OPS))

    for n in graph.nodes:
        if n.op == "Add" and (any(needs(i) for i in n.inputs)):
            ins = []
            for i in n.inputs:
                if needs(i):
                    node = ident(i)
                    out.append(node)
                    ins.append(node.name)
                else:
                    ins.append(i)
            n = replace(n, inputs=tuple(ins))
        elif n.op == "Neuron" and needs(n.inputs[0]):
            node = ident(n.inputs[0])
            out.append(node)
            n = replace(n, inputs=(node.name,))
        out.append(n)
    new = graph.with_nodes(out)
    if needs(graph.output):
        node = ident(graph.output)
        new = new.with_nodes([*new.nodes, node], output=node.name)
    return new
