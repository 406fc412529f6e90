"""The backend protocol and the result every backend returns.

A backend has a ``name``, a set of ``capabilities`` and two verbs: ``emit`` writes what it
needs into a compiled artifact directory, ``run`` executes a spiking graph on a batch.
Results of different backends are directly comparable: same keys, same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..compiler.graph import SpikingGraph


@dataclass
class RunResult:
    """What one run of a spiking graph on ``B`` samples produced.

    ``spikes[pop]``: bool ``(B, steps, *shape)`` on the global clock (only when spike
    recording was asked for); ``counts[pop]``: int64 ``(B, *shape)``; ``sops[proj]``:
    synaptic operations of each projection, summed over the batch (each delivered event
    times its structural fan-out); ``macs``: encoder multiply-accumulates, summed over the
    batch; ``steps``: global steps executed (the latency of one sample).
    """

    output: np.ndarray
    counts: dict[str, np.ndarray]
    sops: dict[str, int]
    macs: int
    steps: int
    spikes: dict[str, np.ndarray] | None = None
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    name: str
    capabilities: frozenset[str]  # e.g. {"float", "fixed_point", "stream", "record_spikes"}

    def emit(self, graph: SpikingGraph, out_dir: Path) -> dict[str, bytes]:
        """Files (name -> bytes) this target adds to the artifact."""
        ...

    def run(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False) -> RunResult:
        ...
