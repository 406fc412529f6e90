"""Scheduling (DESIGN.md §2): the coupling of every population, then start/end steps,
latency and pipelined throughput.

Coupling rule (the paper's eval rule): a population whose neuron asks for ``stream`` is
stream-coupled when every source is a population with one ``T`` equal to its own; the
sources' spike trains are lined up step for step by delaying the earlier ones
(``delay_k = 1 + max_j start_j − start_k``). A population driven by the analog encoder
alone gets a constant current, which *is* the rate rule: it is rate-coupled silently.
Otherwise the population falls back to ``rate`` and a warning goes to
``graph.meta["warnings"]``. Lowering folds ``1/T_src`` into every weight (rate); granting
stream multiplies the incoming weights back by the shared ``T``. Starts then come from
:func:`pseudosnn.compiler.spiking.schedule.schedule`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pseudosnn.compiler.spiking.graph import SpikingGraph
from pseudosnn.compiler.spiking.schedule import schedule, window_start


def _stream_refusal(pop, incoming, pops) -> str | None:
    """Why ``pop`` cannot be stream-coupled (None: it can)."""
    t_own = np.unique(pop.timesteps)
    for pr in incoming:
        if pr.is_encoder:
            return "it also reads the analog input (a constant current)"
        t_src = np.unique(pops[pr.source].timesteps)
        if t_own.size != 1 or not np.array_equal(t_src, t_own):
            return (f"source {pr.source!r} has T {t_src.tolist()} != {t_own.tolist()}; a "
                    "mirror-padded sum of trains of different lengths is not expressible")
    return None


def assign_couplings(graph: SpikingGraph) -> SpikingGraph:
    warnings = list(graph.meta.get("warnings", []))
    pops = {p.name: p for p in graph.populations}
    projs = {pr.name: pr for pr in graph.projections}
    start: dict[str, int] = {}
    t_max = {p.name: p.t_max for p in graph.populations}
    for p in graph.topological_populations():
        incoming = [projs[pr.name] for pr in graph.incoming(p.name)]
        if p.coupling == "stream":
            reason = _stream_refusal(p, incoming, pops)
            if reason is None:  # line the trains up: every source's first event arrives
                first = max(start[pr.source] for pr in incoming)  # at first + 1
                for pr in incoming:
                    t_src = float(np.unique(pops[pr.source].timesteps)[0])
                    projs[pr.name] = pr.times_source(t_src).replaced(
                        delay=1 + first - start[pr.source])
                incoming = [projs[pr.name] for pr in incoming]
            else:
                pops[p.name] = replace(p, coupling="rate")
                # direct encoding: a constant current every step of the window *is* the
                # rate rule, so a population driven by the encoder alone is silently rate
                if not all(pr.is_encoder for pr in incoming):
                    warnings.append(f"population {p.name!r}: stream coupling not possible "
                                    f"({reason}); using rate coupling")
        start[p.name] = window_start(pops[p.name], incoming, start, t_max)
    out = replace(graph.with_populations(pops[p.name] for p in graph.populations),
                  projections=tuple(projs[pr.name] for pr in graph.projections))
    return replace(out, meta={**graph.meta, "warnings": warnings})


def schedule_graph(graph: SpikingGraph) -> SpikingGraph:
    """Couplings, then every population's window; ``meta`` gets latency and throughput."""
    g = schedule(assign_couplings(graph))
    return replace(g, meta={**g.meta, "latency_steps": g.latency_steps,
                            "pipeline_interval": g.pipeline_interval})
