"""Time-major building blocks: every tensor between layers is ``[T, B, *features]``.

* :class:`SeqToANN` folds time into batch for plain stateless modules (Conv2d,
  BatchNorm, AvgPool2d, AdaptiveAvgPool2d, Linear, Flatten) and unfolds after.
* :class:`ResidualAdd` adds two paths of possibly different lengths.
* :class:`SpikePool` is a neuron followed by max pooling of its *spikes* (the paper's
  SEW-ResNet stems).
* :class:`Readout` is the non-spiking output layer: ``mean_t(fc(x))``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ALLOWED_IN_SEQ = (nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d, nn.MaxPool2d,
                  nn.AdaptiveAvgPool2d, nn.Linear, nn.Flatten)


class SeqToANN(nn.Sequential):
    """Apply stateless modules to ``[T, B, ...]`` by folding ``T`` into the batch:
    ``y = f(x.flatten(0, 1)).view(T, B, ...)``. Only the modules in ``ALLOWED_IN_SEQ``
    are accepted (the compiler reads them; a ``MaxPool2d`` here pools currents, which
    deploys only in the encoder, before any neuron: pool spikes with :class:`SpikePool`)."""

    def __init__(self, *modules: nn.Module) -> None:
        for m in modules:
            if not isinstance(m, ALLOWED_IN_SEQ):
                raise TypeError(f"SeqToANN accepts only {[c.__name__ for c in ALLOWED_IN_SEQ]}, "
                                f"got {type(m).__name__}")
        super().__init__(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = super().forward(x.flatten(0, 1))
        return y.view(t, b, *y.shape[1:])


class ResidualAdd(nn.Module):
    """Add two time-major paths ``a: [Ta, B, ...]`` and ``b: [Tb, B, ...]``.

    ``mode="mean"`` (default): ``a + b`` when ``Ta == Tb``, else
    ``mean_t(a) + mean_t(b)`` as ``[1, B, ...]`` (rates add; what the compiler deploys).
    ``mode="mirror"`` (the paper's code): the shorter path is extended to the longer length
    by reflecting it in time (indices ``Ts-1, Ts-2, ...`` modulo ``Ts``), then added.
    """

    def __init__(self, mode: Literal["mean", "mirror"] = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "mirror"):
            raise ValueError(f"ResidualAdd mode={mode!r} is not 'mean' or 'mirror'")
        self.mode = mode

    def extra_repr(self) -> str:
        return f"mode={self.mode}"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[0] == b.shape[0]:
            return a + b
        if self.mode == "mean":
            return a.mean(0, keepdim=True) + b.mean(0, keepdim=True)
        short, long = (a, b) if a.shape[0] < b.shape[0] else (b, a)
        ts, diff = short.shape[0], long.shape[0] - short.shape[0]
        idx = torch.arange(ts - 1, ts - 1 - diff, -1, device=short.device) % ts
        return torch.cat([short, short[idx]], dim=0) + long


class SpikePool(nn.Module):
    """A neuron ``sn`` followed by max pooling (``pool``, an ``nn.MaxPool2d``) of its spikes,
    step by step: on binary events a max is an OR over the window, exact in event form.

    Training: ``pool`` of the neuron's (trained, analog) output, as the paper trains. Eval:
    a neuron whose eval output is a spike train (multi-step families, the paper's rule)
    has it pooled per step, ``[T, B, ...]``; a rate neuron's deployed train
    (:meth:`~pseudosnn.neurons.base.SpikingNeuron.rate_spike_steps`) is pooled per step
    and summed: the output is the pooled rate ``a·m/T`` as ``[1, B, ...]`` (the time mean
    of the pooled train, what the next rate layer integrates).
    """

    def __init__(self, sn: nn.Module, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.sn, self.pool = sn, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.sn.returns_trains():
            y = self.sn(x)
            t, b = y.shape[:2]
            z = self.pool(y.flatten(0, 1))
            return z.view(t, b, *z.shape[1:])
        spec = self.sn.deploy_spec()
        T = torch.as_tensor(spec.timesteps).to(x.dtype)
        if T.dim() == 3 and T.shape[1:] != (1, 1):
            raise ValueError("SpikePool needs one T per layer or per channel: a pooling "
                             "window would mix trains of different lengths")
        total = sum(self.pool(s) for s in self.sn.rate_spike_steps(x))
        return (spec.out_scale * total / T).unsqueeze(0)


class Readout(nn.Module):
    """Non-spiking output layer on ``[T, B, F]``: ``mean_t(fc(x))`` -> ``[B, classes]``."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).mean(dim=0)
