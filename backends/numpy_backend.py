"""The NumPy backend: the cycle-accurate simulator (``simulator.engine``) behind the
``Backend`` protocol. It needs nothing beyond the spiking graph, so ``emit`` adds no files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pseudosnn.compiler.spiking.backend import FEATURES, check_supported
from pseudosnn.compiler.spiking.graph import SpikingGraph
from pseudosnn.compiler.spiking.result import RunResult
from pseudosnn.simulator.engine import simulate


class NumpyBackend:
    """Runs a spiking graph on the simulator; float or fixed point, as the graph says."""

    name = "numpy"
    capabilities = frozenset(FEATURES)

    def __init__(self, precision: str = "float64") -> None:
        self.precision = precision

    def emit(self, graph: SpikingGraph, out_dir: Path | None = None) -> dict[str, bytes]:
        return {}

    def run(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False) -> RunResult:
        check_supported(self, graph, record_spikes)
        return simulate(graph, x, record_spikes=record_spikes, precision=self.precision)
