"""The backend protocol and the features a graph asks of a backend.

A backend has a ``name``, the ``capabilities`` it supports and two verbs: ``emit`` returns
the files it adds to a compiled artifact, ``run`` executes a spiking graph on a batch and
returns a :class:`~pseudosnn.compiler.spiking.result.RunResult`. Every command reaches
backends through ``pseudosnn.backends.registry`` and calls :func:`check_supported` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from pseudosnn.compiler.spiking.graph import SpikingGraph
from pseudosnn.compiler.spiking.result import RunResult

from pseudosnn.errors import PseudoSNNError

FEATURES: dict[str, str] = {
    "float": "float arithmetic",
    "fixed_point": "fixed-point arithmetic",
    "rate": "rate-coupled populations",
    "stream": "stream-coupled populations",
    "heterogeneous_T": "different T within a population",
    "event_scale": "per-event scales (per-neuron T into a conv)",
    "delays": "synaptic delays longer than one step",
    "record_spikes": "spike trains (every neuron, every step)",
    "leak": "leaky neurons (current or voltage decay: not rate-expressible, no closed form)",
    "hard_reset": "hard reset (not rate-expressible, no closed form)",
    "fire_above": "firing on v > threshold (Loihi's comparator)",
    "leaky_readout": "a leaky readout (an imported NIR LI node)",
    "spike_pool": "max pooling of spikes",
    "analog_stem": "an analog max pool in the encoder",
    "event_frames": "event-frame input",
}
"""Every capability a backend may declare, with the words an error uses for it."""


class UnsupportedFeature(PseudoSNNError, ValueError):
    """A graph (or request) needs a feature the chosen backend does not have."""


class Backend(Protocol):
    name: str
    capabilities: frozenset[str]  # a subset of FEATURES

    def emit(self, graph: SpikingGraph, out_dir: Path | None = None) -> dict[str, bytes]:
        """Files (name -> bytes) this target adds to the artifact."""
        ...

    def run(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False) -> RunResult:
        ...


def required_features(graph: SpikingGraph, record_spikes: bool = False) -> set[str]:
    """The features (keys of :data:`FEATURES`) running ``graph`` needs."""
    need = {"fixed_point" if graph.fixed_point else "float"}
    need |= {p.coupling for p in graph.populations}
    if any(np.unique(p.timesteps).size > 1 for p in graph.populations):
        need.add("heterogeneous_T")
    if any(pr.event_scale is not None for pr in graph.projections):
        need.add("event_scale")
    if any(pr.delay > 1 for pr in graph.projections):
        need.add("delays")
    for p in graph.populations:
        dyn = p.dynamics
        if dyn.du < 1 or dyn.dv > 0:
            need.add("leak")
        if dyn.reset == "hard":
            need.add("hard_reset")
        if dyn.fire == ">":
            need.add("fire_above")
    if graph.readout.decay:
        need.add("leaky_readout")
    if record_spikes:
        need.add("record_spikes")
    if graph.pools:
        need.add("spike_pool")
    if graph.input.stem is not None:
        need.add("analog_stem")
    if graph.input.frames:
        need.add("event_frames")
    return need


def check_supported(backend: Backend, graph: SpikingGraph, record_spikes: bool = False) -> None:
    """Raise :class:`UnsupportedFeature` naming what ``graph`` needs that ``backend`` lacks."""
    missing = sorted(required_features(graph, record_spikes) - set(backend.capabilities))
    if missing:
        what = ", ".join(FEATURES[m] for m in missing)
        raise UnsupportedFeature(
            f"the {backend.name} target does not support {what}; run this graph with "
            "--target numpy (the simulator supports every feature)")
