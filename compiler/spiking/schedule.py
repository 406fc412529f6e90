"""The schedule rule (DESIGN.md §2 "Schedule"), written once.

A projection ``pr`` from source population ``s`` delivers its last events at
``s.start + T_max(s) - 1 + pr.delay``; the encoder delivers its current at ``pr.delay``
(= 0). A population's window starts

* rate:   when the last source has delivered: ``start = max_k last_delivery_k``;
* stream: one synaptic delay after its sources start: ``start = start_k + delay_k``
  (every source must give the same step and share the population's one ``T``).

The readout is final at its last delivery; a sample's latency is that step + 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from pseudosnn.compiler.spiking.graph import GraphError, Population, Projection, SpikingGraph


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
    starts = {first_delivery(pr, start) for pr in incoming}
    if len(starts) != 1:
        raise GraphError(
            f"stream-coupled population {pop.name!r} has sources that start at "
            f"different steps {sorted(starts)}; use rate coupling")
    return starts.pop()


def check_stream_sources(graph: SpikingGraph, pop: Population) -> None:
    """A stream population shares its one ``T`` with every source population."""
    t_pop = np.unique(pop.timesteps)
    for pr in graph.incoming(pop.name):
        if pr.is_encoder:
            continue
        t_src = np.unique(graph.population(pr.source).timesteps)
        if t_src.size != 1 or not np.array_equal(t_src, t_pop):
            raise GraphError(
                f"stream-coupled population {pop.name!r} needs one T shared with its "
                f"source {pr.source!r} (got {t_pop} and {t_src}); use rate coupling")


def schedule(graph: SpikingGraph) -> SpikingGraph:
    """Set every population's ``start`` by :func:`window_start`, in topological order."""
    start: dict[str, int] = {}
    t_max = {p.name: p.t_max for p in graph.populations}
    for pop in graph.topological_populations():
        if pop.coupling == "stream":
            check_stream_sources(graph, pop)
        start[pop.name] = int(window_start(pop, graph.incoming(pop.name), start, t_max))
    return graph.with_populations(replace(p, start=start[p.name]) for p in graph.populations)


def readout_step(graph: SpikingGraph) -> int:
    """Step at which the readout's value is final (its last delivery)."""
    start = {p.name: p.start for p in graph.populations}
    t_max = {p.name: p.t_max for p in graph.populations}
    return max(last_delivery(pr, start, t_max) for pr in graph.incoming(graph.readout.name))
