"""The backend protocol.

A backend has a ``name``, a set of ``capabilities`` and two verbs: ``emit`` writes what it
needs into a compiled artifact directory, ``run`` executes a spiking graph on a batch and
returns a :class:`~pseudosnn.simulator.result.RunResult` (the simulator's result type), so
results of different backends compare directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..compiler.graph import SpikingGraph
from ..simulator.result import RunResult


class Backend(Protocol):
    name: str
    capabilities: frozenset[str]  # e.g. {"float", "fixed_point", "stream", "record_spikes"}

    def emit(self, graph: SpikingGraph, out_dir: Path) -> dict[str, bytes]:
        """Files (name -> bytes) this target adds to the artifact."""
        ...

    def run(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False) -> RunResult:
        ...
