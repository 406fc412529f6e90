"""Scheduling (DESIGN.md §2): the coupling of every population, then start/end steps,
latency and pipelined throughput.

Coupling rule (the paper's eval rule): a population whose neuron asks for ``stream`` is
stream-coupled when every event source (population or spike pool) has one ``T`` equal to
its own; the sources' spike trains are lined up step for step by delaying the earlier ones
(``delay_k = 1 + max_j start_j − start_k``). Otherwise it is rate-coupled (the time mean
of its input), silently where that is the rule: trains of one length other than its
``T``; a constant current (the analog encoder alone); event frames when its ``T`` is not
the frame count (it streams them when it is); an encoder current beside event sources
when residual sums take time means (``meta["residual_mode"] == "mean"``; with the paper's
``pad_and_add``, ``"mirror"``, the 1-step value repeats, so it is held through a stream
window). Sources whose trains differ in length, mirror-padded, are not expressible: the
population falls back to ``rate`` and a warning goes to ``graph.meta["warnings"]``. Lowering folds
``1/T_src`` into every weight (rate); granting stream multiplies the incoming weights back
by the shared ``T``. Starts then come from
:func:`pseudosnn.compiler.spiking.schedule.schedule`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pseudosnn.compiler.spiking.graph import SpikePool, SpikingGraph
from pseudosnn.compiler.spiking.schedule import pool_start, schedule, window_start


def _stream_refusal(graph: SpikingGraph, pop, incoming, sources) -> tuple[bool, str | None]:
    """``(stream, warning)``: whether ``pop`` streams its input; when it does not, a
    warning if the rate rule is not what the network computes (a mirror-padded sum of
    trains of different lengths), None when it is (a constant current, one train length
    other than ``pop``'s T: the time mean)."""
    t_own = np.unique(pop.timesteps)
    events = [pr for pr in incoming if not pr.is_encoder]
    frames = graph.input.frames
    if frames and len(events) < len(incoming):
        if events:
            return False, "it reads event frames and spikes at once, which is not supported"
        return t_own.tolist() == [frames], None
    if not events:
        return False, None
    lengths = {tuple(np.unique(sources[pr.source].timesteps).tolist()) for pr in events}
    mirror = graph.meta.get("residual_mode") == "mirror"
    if len(events) < len(incoming) and not mirror:
        return False, None  # mean mode: a 1-step analog value and trains add as time means
    if len(lengths) == 1 and t_own.size == 1 and lengths == {(int(t_own[0]),)}:
        return True, None
    if len(lengths) > 1 and mirror:
        return False, (f"its sources' trains have lengths {sorted(lengths)}; a "
                       "mirror-padded sum of trains of different lengths is not expressible")
    return False, None


def _grant_stream(pr, sources, start, first):
    """An event projection into a stream population: ``1/T_src`` unfolded, its train
    delayed to arrive with the latest source's."""
    if pr.is_encoder:
        return pr
    t_src = float(np.unique(sources[pr.source].timesteps)[0])
    return pr.times_source(t_src).replaced(delay=1 + first - start[pr.source])


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
            stream, warning = _stream_refusal(graph, p, incoming, sources)
            if stream:  # line the trains up: every source's first event arrives
                first = max((start[pr.source] for pr in incoming if not pr.is_encoder),
                            default=0)  # at first + 1
                for pr in incoming:
                    projs[pr.name] = _grant_stream(pr, sources, start, first)
                incoming = [projs[pr.name] for pr in incoming]
            else:
                sources[p.name] = replace(p, coupling="rate")
                if warning:
                    warnings.append(f"population {p.name!r}: stream coupling not possible "
                                    f"({warning}); using rate coupling")
        start[p.name] = window_start(sources[p.name], incoming, start, t_max)
    out = replace(graph.with_populations(sources[p.name] for p in graph.populations),
                  projections=tuple(projs[pr.name] for pr in graph.projections))
    return replace(out, meta={**graph.meta, "warnings": warnings})


def schedule_graph(graph: SpikingGraph) -> SpikingGraph:
    """Couplings, then every population's window; ``meta`` gets latency and throughput."""
    g = schedule(assign_couplings(graph))
    return replace(g, meta={**g.meta, "latency_steps": g.latency_steps,
                            "pipeline_interval": g.pipeline_interval})
