"""Per-layer summary of a compiled spiking graph (printed by ``pseudosnn-compile``).

One row per population, spike pool and for the readout: shape, T (min–max when
heterogeneous), neuron (``IF``, or ``LIF`` with its decays; ``hard(v_reset)`` reset; ``>``
comparison; ``maxpool`` for a pool), coupling, window ``[start, end)``, fan-in (incoming
synapses per neuron, structural; a pool's window size), fan-out (outgoing synapses per
neuron, mean), weight bits, and the upper bound of synaptic operations
``Σ_neurons fan-out·T`` (every neuron firing every step).
"""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.graph import Population, SpikePool, SpikingGraph


def neuron_label(p: Population) -> str:
    """``IF`` / ``LIF du=.. dv=..``, then ``hard(v_reset)`` and ``v>θ`` where they apply."""
    d = p.dynamics
    parts = ["IF" if d.du == 1 and d.dv == 0 else "LIF"]
    parts += [f"du={d.du:.3g}"] if d.du != 1 else []
    parts += [f"dv={d.dv:.3g}"] if d.dv else []
    parts += [f"hard({d.v_reset:g})"] if d.reset == "hard" else []
    parts += ["v>θ"] if d.fire == ">" else []
    return " ".join(parts)


def layer_rows(graph: SpikingGraph) -> list[dict]:
    rows = []
    bits = "int8" if graph.fixed_point else "float"
    for p in graph.topological_sources():
        T = p.timesteps_full()
        fanout = sum((counting.fanout(pr, p.shape) for pr in graph.outgoing(p.name)),
                     np.zeros(p.shape, np.int64))
        pool = isinstance(p, SpikePool)
        rows.append({
            "layer": p.name, "shape": "x".join(map(str, p.shape)),
            "T": f"{T.min()}" if T.min() == T.max() else f"{T.min()}-{T.max()}",
            "neuron": "maxpool" if pool else neuron_label(p),
            "coupling": "-" if pool else p.coupling, "window": f"[{p.start},{p.end})",
            "fan_in": int(np.prod(p.kernel)) if pool else counting.fan_in(graph, p.name),
            "fan_out": float(fanout.mean()), "weight_bits": "-" if pool else bits,
            "sops_max": counting.sops_upper_bound(graph, p),
        })
    ro = graph.readout
    rows.append({"layer": ro.name, "shape": "x".join(map(str, ro.shape)), "T": "-",
                 "neuron": f"LI decay={ro.decay:.3g}" if ro.decay else "-", "coupling": "-",
                 "window": f"@{graph.readout_step}",
                 "fan_in": counting.fan_in(graph, ro.name), "fan_out": 0.0, "weight_bits": bits,
                 "sops_max": 0})
    return rows


def format_summary(graph: SpikingGraph) -> str:
    rows = layer_rows(graph)
    cols = ["layer", "shape", "T", "neuron", "coupling", "window", "fan_in", "fan_out",
            "weight_bits", "sops_max"]
    cells = [[str(r[c]) if not isinstance(r[c], float) else f"{r[c]:.1f}" for c in cols]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    total = sum(r["sops_max"] for r in rows)
    out.append(f"populations: {len(graph.populations)}  projections: {len(graph.projections)}"
               f"  SOPs upper bound: {total:,}  encoder MACs: {counting.encoder_macs(graph):,}")
    out.append(f"latency: {graph.latency_steps} steps  pipelined: one sample every "
               f"{graph.pipeline_interval} steps")
    stem, frames = graph.input.stem, graph.input.frames
    if stem is not None:
        out.append(f"encoder: analog {'conv + ' if stem.weight is not None else ''}max pool "
                   f"{stem.pool_kernel[0]}x{stem.pool_kernel[1]}/{stem.pool_stride[0]} on the "
                   f"host ({counting.encoder_compares(graph):,} compares per sample)")
    if frames:
        out.append(f"input: {frames} event frames per sample")
    nir = graph.meta.get("nir")
    if nir:
        out.append(f"imported from {graph.meta.get('source_framework')} via NIR (--from "
                   f"{nir['dialect']}, dt {nir['dt']}, {nir['timesteps']} steps); readout: "
                   f"{nir['readout']}; a library spike at step t is ours at t + the "
                   "population's window start")
    for w in graph.meta.get("warnings", []):
        out.append(f"warning: {w}")
    return "\n".join(out)
