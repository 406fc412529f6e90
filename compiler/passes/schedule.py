"""Scheduling (DESIGN.md §2): the coupling of every population, then start/end steps,
latency and pipelined throughput.

Coupling rule (the paper's eval rule): a population whose neuron asks for ``stream`` is
stream-coupled when every event source (population or spike pool) has one ``T`` equal to
its own; the sources' spike trains are lined up step for step by delaying the earlier ones
(``delay_k = 1 + max_j start_j − start_k``). A population driven by the analog encoder
alone gets a constant current, which *is* the rate rule: it is rate-coupled silently;
with event frames it streams them when its ``T`` is the frame count (else their time
mean, the paper's rule again). An encoder current beside event sources is held constant
through a stream window when the network's residual sums mirror-pad a 1-step value (the
paper's ``pad_and_add``, ``meta["residual_mode"] == "mirror"``). Otherwise the population
falls back to ``rate`` and a warning goes to ``graph.meta["warnings"]``. Lowering folds
``1/T_src`` into every weight (rate); granting stream multiplies the incoming weights back
by the shared ``T``. Starts then come from
:func:`pseudosnn.compiler.spiking.schedule.schedule`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pseudosnn.compiler.spiking.graph import SpikePool, SpikingGraph
from pseudosnn.compiler.spiking.schedule import pool_start, schedule, window_start

ENCODER_ONLY = "encoder only"


def _stream_refusal(graph: SpikingGraph, pop, incoming, sources) -> str | None:
    """Why ``pop`` cannot be stream-coupled (None: it can; :data:`ENCODER_ONLY`: a
    constant current, i.e. the rate rule)."""
    t_own = np.unique(pop.timesteps)
    events = [pr for pr in incoming if not pr.is_encoder]
    frames = graph.input.frames
    if frames and len(events) < len(incoming):
        if events:
            return "it reads event frames and spikes at once"
        return None if t_own.tolist() == [frames] else ENCODER_ONLY
    if not events:
        return ENCODER_ONLY
    if len(events) < len(incoming) and graph.meta.get("residual_mode") != "mirror":
        return ("it also reads the analog input (a constant current) and a residual sum of "
                "trains of different lengths takes their time means")
    for pr in events:
        t_src = np.unique(sources[pr.source].timesteps)
        if t_own.size != 1 or not np.array_equal(t_src, t_own):
            return (f"source {pr.source!r} has T {t_src.tolist()} != {t_own.tolist()}; a "
                    "mirror-padded sum of trains of different lengths is not expressible")
    return None


def _grant_stream(pr, sources, start, first):
    """An event projection into a stream population: ``1/T_src`` unfolded, its train
    delayed to arrive with the latest source's."""
    if pr.is_encoder:
        return pr
    t_src = float(np.unique(sources[pr.source].timesteps)[0])
    return replace(pr, weight=pr.weight * t_src, delay=1 + first - start[pr.source])


def assign_couplings(graph: SpikingGraph) -> SpikingGraph:
    warnings = list(graph.meta.get("warnings", []))
    sources = {p.name: p for p in (*graph.populations, *graph.pools)}
    projs = {pr.name: pr for pr in graph.projections}
    start: dict[str, int] = {}
    t_max = {name: p.t_max for name, p in sources.items()}
    for p in graph.topological_sources():
        if isinstance(p, SpikePool):
            start[p.name] = pool_start(p, start)
            continue
        incoming = [projs[pr.name] for pr in graph.incoming(p.name)]
        if p.coupling == "stream":
            reason = _stream_refusal(graph, p, incoming, sources)
            if reason is None:  # line the trains up: every source's first event arrives
                first = max((start[pr.source] for pr in incoming if not pr.is_encoder),
                            default=0)  # at first + 1
                for pr in incoming:
                    projs[pr.name] = _grant_stream(pr, sources, start, first)
                incoming = [projs[pr.name] for pr in incoming]
            else:
                sources[p.name] = replace(p, coupling="rate")
                # direct encoding: a constant current every step of the window *is* the
                # rate rule, so a population driven by the encoder alone is silently rate
                if reason != ENCODER_ONLY:
                    warnings.append(f"population {p.name!r}: stream coupling not possible "
                                    f"({reason}); using rate coupling")
        start[p.name] = window_start(sources[p.name], incoming, start, t_max)
    out = replace(graph.with_populations(sources[p.name] for p in graph.populations),
                  projections=tuple(projs[pr.name] for pr in graph.projections))
    return replace(out, meta={**graph.meta, "warnings": warnings})


def schedule_graph(graph: SpikingGraph) -> SpikingGraph:
    """Couplings, then every population's window; ``meta`` gets latency and throughput."""
    g = schedule(assign_couplings(graph))
    return replace(g, meta={**g.meta, "latency_steps": g.latency_steps,
                            "pipeline_interval": g.pipeline_interval})
