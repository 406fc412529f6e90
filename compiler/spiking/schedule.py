"""The schedule rule (DESIGN.md §2 "Schedule"), written once.

A projection ``pr`` from source population ``s`` delivers its last events at
``s.start + T_max(s) - 1 + pr.delay``; the encoder delivers its current at ``pr.delay``
(= 0). A population's window starts

* rate:   when the last source has delivered: ``start = max_k last_delivery_k``;
* stream: one synaptic delay after its sources start: ``start = start_k + delay_k``
  (every event source must give the same step and share the population's one ``T``; an
  encoder current is held through the window, so alone it gives ``start = 0``).

A spike pool forwards its source's spikes of step ``t`` at step ``t + POOL_DELAY``: its
train opens at ``start = start_source + POOL_DELAY`` and has the source's ``T``; its
projections then deliver like a population's.

The readout is final at its last delivery; a sample's latency is that step + 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from pseudosnn.compiler.spiking.graph import (
    GraphError,
    Population,
    Projection,
    SpikePool,
    SpikingGraph,
)

POOL_DELAY = 1
"""Steps between a source's spike and the pooled spike: a Lava process that forwards
spikes (receive at ``t``, send at ``t + 1``) adds one step, like lava's ``Dense``; the
simulator keeps the same clock so that trains agree step for step."""


def last_delivery(pr: Projection, start: Mapping[str, int], t_max: Mapping[str, int]) -> int:
    """Step at which ``pr`` delivers its last events, given the sources' starts and T."""
    if pr.is_encoder:
        return pr.delay
    return start[pr.source] + t_max[pr.source] - 1 + pr.delay


def first_delivery(pr: Projection, start: Mapping[str, int]) -> int:
    """Step at which ``pr`` delivers its first events."""
    return pr.delay if pr.is_encoder else start[pr.source] + pr.delay


def window_start(pop: Population, incoming: list[Projection], start: Mapping[str, int],
                 t_max: Mapping[str, int]) -> int:
    """First step of ``pop``'s window under its coupling (the rule above)."""
    if not incoming:
        raise GraphError(f"population {pop.name!r} has no incoming projection")
    if pop.coupling == "rate":
        return max(last_delivery(pr, start, t_max) for pr in incoming)
    # an encoder current is held through a stream window (direct encoding): only event
    # sources, if any, fix the start
    events = [pr for pr in incoming if not pr.is_encoder] or incoming
    starts = {first_delivery(pr, start) for pr in events}
    if len(starts) != 1:
        raise GraphError(
            f"stream-coupled population {pop.name!r} has sources that start at "
            f"different steps {sorted(starts)}; use rate coupling")
    return starts.pop()


def pool_start(pool: SpikePool, start: Mapping[str, int]) -> int:
    """First step of a spike pool's train."""
    return start[pool.source] + POOL_DELAY


def check_stream_sources(graph: SpikingGraph, pop: Population) -> None:
    """A stream population shares its one ``T`` with every source population or pool."""
    t_pop = np.unique(pop.timesteps)
    for pr in graph.incoming(pop.name):
        if pr.is_encoder:
            continue
        t_src = np.unique(graph.event_source(pr.source).timesteps)
        if t_src.size != 1 or not np.array_equal(t_src, t_pop):
            raise GraphError(
                f"stream-coupled population {pop.name!r} needs one T shared with its "
                f"source {pr.source!r} (got {t_pop} and {t_src}); use rate coupling")


def schedule(graph: SpikingGraph) -> SpikingGraph:
    """Set every population's (and pool's) ``start`` by :func:`window_start` (and
    :func:`pool_start`), in topological order."""
    start: dict[str, int] = {}
    t_max = {p.name: p.t_max for p in (*graph.populations, *graph.pools)}
    for node in graph.topological_sources():
        if isinstance(node, SpikePool):
            start[node.name] = pool_start(node, start)
            continue
        if node.coupling == "stream":
            check_stream_sources(graph, node)
        start[node.name] = int(window_start(node, graph.incoming(node.name), start, t_max))
    return replace(graph.with_populations(replace(p, start=start[p.name])
                                          for p in graph.populations),
                   pools=tuple(replace(p, start=start[p.name]) for p in graph.pools))


def readout_step(graph: SpikingGraph) -> int:
    """Step at which the readout's value is final (its last delivery)."""
    start = {p.name: p.start for p in (*graph.populations, *graph.pools)}
    t_max = {p.name: p.t_max for p in (*graph.populations, *graph.pools)}
    return max(last_delivery(pr, start, t_max) for pr in graph.incoming(graph.readout.name))
