"""The NumPy backend: the cycle-accurate simulator (``simulator.engine``) behind the
``Backend`` protocol. It needs nothing beyond the spiking graph, so ``emit`` adds no files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..compiler.graph import SpikingGraph
from ..simulator.engine import simulate
from ..simulator.result import RunResult


class NumpyBackend:
    """Runs a spiking graph on the simulator; float or fixed point, as the graph says."""

    name = "numpy"
    capabilities = frozenset({"float", "fixed_point", "rate", "stream", "record_spikes"})

    def emit(self, graph: SpikingGraph, out_dir: Path) -> dict[str, bytes]:
        return {}

    def run(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False) -> RunResult:
        return simulate(graph, x, record_spikes=record_spikes)
