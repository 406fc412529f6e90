"""Exact running totals over many batches (and shards) of simulated samples.

Every count is an integer and merging is addition (outputs and predictions are
concatenated in sample order), so a run split into batches or processes merges to the
same numbers, bit for bit, as one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pseudosnn.compiler.spiking.result import RunResult


@dataclass
class Tally:
    samples: int = 0
    steps: int = 0
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # pop -> (*shape) totals
    spikes_per_step: dict[str, np.ndarray] = field(default_factory=dict)  # pop -> (steps,)
    sops: dict[str, int] = field(default_factory=dict)
    macs: int = 0
    neuron_updates: dict[str, int] = field(default_factory=dict)
    compares: dict[str, int] = field(default_factory=dict)  # max pooling
    outputs: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)

    def add(self, result: RunResult, labels: np.ndarray | None = None) -> Tally:
        b = int(result.output.shape[0])
        self.samples += b
        self.steps = max(self.steps, int(result.steps))
        for k, n in result.counts.items():
            self.spikes[k] = self.spikes.get(k, 0) + n.sum(axis=0)
        for k, s in (result.spikes_per_step or {}).items():
            self.spikes_per_step[k] = self.spikes_per_step.get(k, 0) + s
        for k, s in result.sops.items():
            self.sops[k] = self.sops.get(k, 0) + int(s)
        for k, u in result.neuron_updates.items():
            self.neuron_updates[k] = self.neuron_updates.get(k, 0) + int(u)
        for k, c in result.compares.items():
            self.compares[k] = self.compares.get(k, 0) + int(c)
        self.macs += int(result.macs)
        self.outputs.append(np.asarray(result.output))
        if labels is not None:
            self.labels.append(np.asarray(labels).reshape(-1))
        return self

    def merge(self, other: Tally) -> Tally:
        """``self`` followed by ``other`` (sample order is kept)."""
        self.samples += other.samples
        self.steps = max(self.steps, other.steps)
        for mine, theirs in ((self.spikes, other.spikes),
                             (self.spikes_per_step, other.spikes_per_step),
                             (self.sops, other.sops), (self.neuron_updates, other.neuron_updates),
                             (self.compares, other.compares)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.macs += other.macs
        self.outputs += other.outputs
        self.labels += other.labels
        return self

    @property
    def output(self) -> np.ndarray:
        return np.concatenate(self.outputs) if self.outputs else np.zeros((0,))

    @property
    def predictions(self) -> np.ndarray:
        out = self.output
        return out.reshape(out.shape[0], -1).argmax(axis=1) if out.size else np.zeros(0, int)

    @property
    def accuracy(self) -> float | None:
        if not self.labels:
            return None
        y = np.concatenate(self.labels)
        if y.shape[0] != self.samples:
            raise ValueError(f"{y.shape[0]} labels for {self.samples} samples")
        return float(np.mean(self.predictions == y))
