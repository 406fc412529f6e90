"""QCFS: the quantisation-clip-floor-shift activation of ANN-to-SNN conversion (Bu et al.,
"Optimal ANN-SNN conversion for high-accuracy and ultra-low-latency SNNs", ICLR 2022).

Forward on the time mean ``x`` of the input (``[T_in, B, ...] -> [1, B, ...]``)::

    y = lambda * clip(floor(x * L / lambda + 1/2) / L, 0, 1)

with ``L`` quantisation levels and a learnable per-layer threshold ``lambda``; ``floor``
passes the gradient straight through, so ``lambda`` learns through both its appearances.
Eval semantics: identical (deterministic).

Deployable: this *is* a rate-coupled integrate-and-fire population with ``T = L``,
threshold ``lambda``, half-threshold start ``v0 = lambda/2`` and ``c = x``: its count
``n = clamp(floor(L*x/lambda + 1/2), 0, L)`` and downstream sees ``lambda * n/L``
(``out_scale = lambda``). Ties round half up in both. The trained ANN therefore converts
to IF neurons exactly (rate coupling) and approximately with stream coupling at ``T = L``.
"""

from __future__ import annotations

import torch
from torch import nn

from pseudosnn.neurons.base import NeuronSpec, SpikingNeuron
from pseudosnn.neurons.multispike import time_mean


class _FloorSTE(torch.autograd.Function):
    """``floor(x)`` with the identity gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        return grad_out


class QCFSNeuron(SpikingNeuron):
    """Clip-floor-shift activation with learnable threshold ``lambda`` (see module docstring).

    ``init_lambda`` defaults to 8 as the QCFS reference code; ``learn_lambda=False`` freezes
    it (used by :mod:`pseudosnn.conversion` for calibrated thresholds).
    """

    family = "qcfs"

    def __init__(self, shape: tuple[int, ...] | None = None, *, L: int = 8,
                 init_lambda: float = 8.0, learn_lambda: bool = True) -> None:
        super().__init__()
        if int(L) != L or L < 1:
            raise ValueError(f"L (quantisation levels = timesteps) must be a positive integer, "
                             f"got {L!r}")
        if init_lambda <= 0:
            raise ValueError(f"init_lambda must be positive, got {init_lambda}")
        self.shape = tuple(shape) if shape is not None else None
        self.L = int(L)
        self.lam = nn.Parameter(torch.tensor(float(init_lambda)), requires_grad=learn_lambda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = time_mean(x)
        q = _FloorSTE.apply(x * self.L / self.lam + 0.5) / self.L
        return self.lam * torch.clamp(q, 0.0, 1.0)

    def timesteps(self) -> torch.Tensor:
        return torch.tensor(self.L)

    def deploy_spec(self) -> NeuronSpec:
        lam = float(self.lam.detach())
        if lam <= 0:
            raise ValueError(f"QCFS threshold lambda={lam} is not positive; the layer is dead")
        return NeuronSpec(
            timesteps=torch.tensor(self.L), threshold=lam, v0=lam / 2.0, scale=1.0, bias=0.0,
            out_scale=lam, coupling="rate", reset="soft",
        )

    def extra_repr(self) -> str:
        return f"L={self.L}, lambda={float(self.lam.detach()):.4g}"
