"""A plain ReLU in the neuron slot: the ANN that ANN-to-SNN conversion starts from.

Works on the time-major convention (``[T_in, B, *f]`` -> ``[1, B, *f]``, time mean first)
and has no integrate-and-fire equivalent of its own (``deploy_spec`` raises
:class:`~pseudosnn.neurons.base.NotDeployable`): a converter replaces it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pseudosnn.neurons.base import SpikingNeuron


class ReLUNeuron(SpikingNeuron):
    """``relu(mean_t(x))`` as ``[1, B, *f]``; extra keyword arguments are ignored so a
    neuron config written for another family can be reused."""

    family = "relu"

    def __init__(self, shape: tuple[int, ...] | None = None, **kwargs) -> None:
        super().__init__()
        self.shape = tuple(shape) if shape is not None else None

    def timesteps(self) -> torch.Tensor:
        """One analog pass: T = 1."""
        return torch.tensor(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x.mean(dim=0, keepdim=True))
