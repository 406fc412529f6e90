"""Batch-norm folding into the preceding convolution or linear layer.

With ``k = γ/sqrt(σ² + eps)`` per output channel: ``W' = W·k`` (kept factorised: the
layer's ``out_scale`` is multiplied by ``k``, ``W`` stays the trained weight),
``b' = (b − μ)·k + β``.
A BatchNorm whose producer is not a Conv/Gemm used only by it is left in place (the
lowering then rejects it by name).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pseudosnn.compiler.ir import Graph
from pseudosnn.compiler.passes._rewrite import producers, use_counts


def fold_batchnorm(graph: Graph) -> Graph:
    by_name, uses = producers(graph), use_counts(graph)
    folded: dict[str, object] = {}  # producer name -> new producer
    alias: dict[str, str] = {}  # bn name -> producer name
    for n in graph.nodes:
        if n.op != "BatchNorm":
            continue
        src = by_name.get(n.inputs[0])
        if src is None or src.op not in ("Conv", "Gemm") or uses[src.name] != 1:
            continue
        p = n.params
        k = np.asarray(p["gamma"]) / np.sqrt(np.asarray(p["var"]) + n.attrs["eps"])
        w = np.asarray(src.params["weight"])
        b = src.params.get("bias")
        b = np.zeros(w.shape[0]) if b is None else np.asarray(b)
        out = src.params.get("out_scale")
        new_out = k if out is None else np.asarray(out) * k
        new_b = (b - np.asarray(p["mean"])) * k + np.asarray(p["beta"])
        # the folded layer takes the BatchNorm's name so that consumers stay wired
        folded[src.name] = replace(src, name=n.name, params={**src.params, "out_scale": new_out,
                                                              "bias": new_b})
        alias[n.name] = src.name
    if not folded:
        return graph
    out = []
    for n in graph.nodes:
        if n.name in folded:
            out.append(folded[n.name])
        elif n.name in alias:
            continue
        else:
            out.append(n)
    return graph.with_nodes(out)
