"""Flatten/reshape resolution: a Gemm reads any value as its C-order flattening, so
``Gemm ∘ Flatten`` is the same Gemm on the unflattened value (``W`` unchanged)."""

from __future__ import annotations

from dataclasses import replace

from pseudosnn.compiler.ir import Graph
from pseudosnn.compiler.passes._rewrite import producers, prune


def resolve_flatten(graph: Graph) -> Graph:
    by_name = producers(graph)
    out = []
    for n in graph.nodes:
        src = by_name.get(n.inputs[0]) if n.inputs else None
        while n.op == "Gemm" and src is not None and src.op == "Flatten":
            n = replace(n, inputs=src.inputs)
            src = by_name.get(n.inputs[0])
        out.append(n)
    return prune(graph.with_nodes(out))
