"""Rate-level reference evaluator of a spiking graph: closed form, layer by layer.

For every rate-coupled population ``n = clamp(floor((v0 + T*c)/theta), 0, T)`` with
``c = sum_k project(k, n_k) + b`` (DESIGN.md §2; the sum as :func:`.synapses.drive`
computes it, the encoder's current first), or, for leaky and hard-reset populations (no
closed form), the count of the constant current ``c`` stepped with
:func:`.semantics.neuron_step`; the readout is ``sum_k project(k, n_k) + b``. A spike
pool's count is ``sum_t OR_window s_t`` over its source's train of that constant current
(``semantics.constant_current_train``). This is the fast check used by ``--verify`` and
the tests; stream-coupled populations need the cycle-accurate simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pseudosnn.compiler.spiking.graph import GraphError, Population, SpikingGraph
from pseudosnn.compiler.spiking.semantics import constant_current_counts, constant_current_train
from pseudosnn.compiler.spiking.synapses import drive, encoder_currents, spike_pool


@dataclass
class ReferenceResult:
    counts: dict[str, np.ndarray]  # population or pool -> spike counts (B, *shape), int64
    currents: dict[str, np.ndarray]  # population -> constant current c (B, *shape)
    output: np.ndarray  # readout value (B, *readout.shape), float


def evaluate(graph: SpikingGraph, x: np.ndarray) -> ReferenceResult:
    """Evaluate ``graph`` on a batch ``x`` of shape ``(B, *graph.input.shape)``."""
    x = np.asarray(x, dtype=np.float64)
    if tuple(x.shape[1:]) != tuple(graph.input.sample_shape):
        raise GraphError(f"input has shape {tuple(x.shape[1:])}, the graph expects "
                         f"{tuple(graph.input.sample_shape)} per sample")
    encoder = encoder_currents(graph, x)
    counts: dict[str, np.ndarray] = {}
    currents: dict[str, np.ndarray] = {}

    def current(target: str) -> np.ndarray:
        total = drive(graph, target, counts, fixed_point=graph.fixed_point,
                      initial=encoder.get(target))
        return 0 if total is None else total

    for pop in graph.topological_sources():
        if not isinstance(pop, Population):  # a spike pool of a rate population
            src = graph.population(pop.source)
            train = constant_current_train(currents[src.name], src.timesteps, src.threshold,
                                           src.v0, src.dynamics, graph.fixed_point)
            counts[pop.name] = sum(spike_pool(pop, s) for s in train).astype(np.int64)
            continue
        if pop.coupling != "rate":
            raise GraphError(f"population {pop.name!r} is stream-coupled: the rate-level "
                             "reference cannot evaluate it; use the simulator")
        c = current(pop.name) + np.asarray(pop.bias)
        currents[pop.name] = c
        counts[pop.name] = constant_current_counts(c, pop.timesteps, pop.threshold, pop.v0,
                                                   pop.dynamics, graph.fixed_point)
    ro = graph.readout
    acc = current(ro.name) + np.asarray(ro.bias)
    out = acc / ro.units_per_float if graph.fixed_point else acc
    return ReferenceResult(counts=counts, currents=currents, output=np.asarray(out, np.float64))
