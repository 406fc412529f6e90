"""MultiSpike: integer spike counts in one step (the PseudoSNN paper's
``neuron/multi_spike.py``).

Forward on the time mean ``x`` of the input (``[T_in, B, ...] -> [1, B, ...]``)::

    y = round(clamp(x, min_value, max_value)) / Norm          (Norm defaults to max_value)

with a straight-through gradient: ``dy/dx = 1/Norm`` where ``min_value <= x <= max_value``,
0 outside. Eval semantics: identical (deterministic).

Deployable (for ``min_value = 0``) as a rate-coupled integrate-and-fire population with
``T = max_value``, threshold 1, ``v0 = 1/2``, ``scale = 1/max_value``: its count
``n = clamp(floor(T*x/T + 1/2), 0, T) = round(clamp(x, 0, max))`` and downstream sees
``(max/Norm) * n/T = n/Norm``, so ``out_scale = max_value/Norm``. The one difference is at
exact ties ``x = k + 1/2``: torch rounds half to even, the neuron rounds half up.
``min_value < 0`` (negative counts) is not deployable.
"""

from __future__ import annotations

import torch

from pseudosnn.neurons.base import NeuronSpec, NotDeployable, SpikingNeuron


class _ClampRound(torch.autograd.Function):
    """``round(clamp(x, lo, hi))`` with a straight-through gradient inside ``[lo, hi]``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return torch.round(torch.clamp(x, lo, hi))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        inside = (x >= ctx.lo) & (x <= ctx.hi)
        return grad_out * inside.to(grad_out.dtype), None, None


def time_mean(x: torch.Tensor) -> torch.Tensor:
    """Rate input of a rate-family neuron: ``[T_in, B, ...] -> [1, B, ...]``."""
    if x.dim() < 2:
        raise ValueError(f"expected a time-major input [T, B, ...], got shape {tuple(x.shape)}")
    return x if x.shape[0] == 1 else x.mean(dim=0, keepdim=True)


class MultiSpikeNeuron(SpikingNeuron):
    """Integer-count neuron ``round(clamp(x, min, max))/Norm`` (see module docstring)."""

    family = "multispike"

    def __init__(self, shape: tuple[int, ...] | None = None, *, min_value: int = 0,
                 max_value: int = 4, norm: float | None = None) -> None:
        super().__init__()
        if int(max_value) != max_value or max_value < 1:
            raise ValueError(f"max_value must be a positive integer, got {max_value!r}")
        if int(min_value) != min_value or min_value >= max_value:
            raise ValueError(f"min_value must be an integer below max_value, got {min_value!r}")
        self.shape = tuple(shape) if shape is not None else None
        self.min_value = int(min_value)
        self.max_value = int(max_value)
        self.norm = float(max_value if norm is None else norm)
        if self.norm <= 0:
            raise ValueError(f"norm must be positive, got {self.norm}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = time_mean(x)
        return _ClampRound.apply(x, float(self.min_value), float(self.max_value)) / self.norm

    def timesteps(self) -> torch.Tensor:
        return torch.tensor(self.max_value)

    def deploy_spec(self) -> NeuronSpec:
        if self.min_value != 0:
            raise NotDeployable(
                f"MultiSpikeNeuron with min_value={self.min_value} cannot be deployed: spike "
                "counts are non-negative; use min_value=0"
            )
        return NeuronSpec(
            timesteps=torch.tensor(self.max_value), threshold=1.0, v0=0.5,
            scale=1.0 / self.max_value, bias=0.0, out_scale=self.max_value / self.norm,
            coupling="rate", reset="soft",
        )

    def extra_repr(self) -> str:
        return f"min_value={self.min_value}, max_value={self.max_value}, norm={self.norm}"
