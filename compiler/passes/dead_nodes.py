"""Removal of dead nodes: operators whose value never reaches the output (e.g. an
auxiliary head, or a layer orphaned by an earlier fusion)."""

from __future__ import annotations

from pseudosnn.compiler.ir import Graph
from pseudosnn.compiler.passes._rewrite import prune


def remove_dead(graph: Graph) -> Graph:
    return prune(graph)
