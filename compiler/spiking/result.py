"""What one run of a spiking graph produced: the result type of every backend.

An executor observes only *outputs*: the readout, every population's spike counts, and
(optionally) spike trains and spikes per step. Everything derived from them (SOPs, encoder
MACs, neuron updates, latency) is filled in by :func:`run_result` from the counting
module, so two backends with the same spikes cannot report different counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.graph import SpikingGraph


@dataclass
class RunResult:
    """What one run of a spiking graph on ``B`` samples produced.

    Observed: ``output`` (B, *readout shape), float; ``counts[name]``: int64 ``(B, *shape)``
    of every population and every spike pool (its output events);
    ``spikes[pop]``: bool ``(B, steps, *shape)`` on the global clock (when recorded);
    ``spikes_per_step[pop]``: int64 ``(steps,)`` summed over the batch (when observed).
    Derived (:func:`run_result`): ``sops[proj]`` summed over the batch, ``macs`` (encoder,
    summed over the batch), ``neuron_updates[pop]`` (active, summed over the batch),
    ``leak_multiplies[pop]`` (decay multiplies, active and idle, summed over the batch),
    ``compares[name]`` of max pooling (spike pools and the encoder's analog stem, summed
    over the batch), ``steps`` (latency of one sample). ``extra``: executor-specific facts
    (timings, ...).
    """

    output: np.ndarray
    counts: dict[str, np.ndarray]
    sops: dict[str, int]
    macs: int
    steps: int
    neuron_updates: dict[str, int] = field(default_factory=dict)
    leak_multiplies: dict[str, int] = field(default_factory=dict)
    compares: dict[str, int] = field(default_factory=dict)
    spikes: dict[str, np.ndarray] | None = None
    spikes_per_step: dict[str, np.ndarray] | None = None
    extra: dict = field(default_factory=dict)


def run_result(graph: SpikingGraph, output: np.ndarray, counts: dict[str, np.ndarray], *,
               spikes: dict[str, np.ndarray] | None = None,
               spikes_per_step: dict[str, np.ndarray] | None = None,
               extra: dict | None = None, fanouts: counting.Fanouts | None = None
               ) -> RunResult:
    """The :class:`RunResult` of observed ``output`` and ``counts`` (batch first), with
    every derived count from :mod:`.counting`."""
    output = np.asarray(output, dtype=np.float64)
    b = int(output.shape[0])
    if spikes_per_step is None and spikes is not None:
        spikes_per_step = {k: v.reshape(v.shape[0], v.shape[1], -1).sum(axis=(0, 2))
                           .astype(np.int64) for k, v in spikes.items()}
    compares = counting.pool_compares(graph, counts)
    if graph.input.stem is not None:
        compares[graph.input.stem.name] = b * counting.encoder_compares(graph)
    return RunResult(
        output=output, counts=counts, sops=counting.sops(graph, counts, fanouts),
        macs=b * counting.encoder_macs(graph), steps=graph.latency_steps,
        neuron_updates={p.name: b * counting.active_updates(p) for p in graph.populations},
        leak_multiplies={k: b * v for k, v in counting.leak_multiplies(graph).items()},
        compares=compares, spikes=spikes, spikes_per_step=spikes_per_step,
        extra=dict(extra or {}))
