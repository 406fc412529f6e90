"""Small helpers shared by the IR passes (torch-free)."""

from __future__ import annotations

from pseudosnn.compiler.ir import INPUT, Graph, Node


def producers(graph: Graph) -> dict[str, Node]:
    return {n.name: n for n in graph.nodes}


def use_counts(graph: Graph) -> dict[str, int]:
    counts = {n.name: 0 for n in graph.nodes}
    counts[INPUT] = 0
    for n in graph.nodes:
        for i in n.inputs:
            counts[i] = counts.get(i, 0) + 1
    counts[graph.output] = counts.get(graph.output, 0) + 1
    return counts


def fresh_name(taken: set[str], base: str) -> str:
    if base not in taken:
        taken.add(base)
        return base
    k = 1
    while f"{base}#{k}" in taken:
        k += 1
    taken.add(f"{base}#{k}")
    return f"{base}#{k}"


def prune(graph: Graph) -> Graph:
    """Drop nodes whose value never reaches the output."""
    live = {graph.output}
    by_name = producers(graph)
    stack = [graph.output]
    while stack:
        for i in by_name[stack.pop()].inputs:
            if i in by_name and i not in live:
                live.add(i)
                stack.append(i)
    return graph.with_nodes(n for n in graph.nodes if n.name in live)
