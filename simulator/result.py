"""What one run of a spiking graph produced: the result type of the simulator and of every
backend, so results of different targets compare directly (same keys, same shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
