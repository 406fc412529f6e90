"""Surrogate gradients of the Heaviside spike, each as a smooth step ``H_alpha`` and its
closed-form derivative ``h_alpha = dH_alpha/dx``.

The forward pass of a spiking neuron is the exact step ``S(x) = [x >= 0]`` (``x = v - theta``);
the backward pass replaces ``dS/dx`` (a Dirac delta) by ``h_alpha(x)``. ``alpha`` is the
sharpness (larger = closer to the step):

* sigmoid:   ``H = sigmoid(alpha x)``,             ``h = alpha H (1 - H)``
* atan:      ``H = 1/2 + arctan(pi/2 alpha x)/pi``, ``h = (alpha/2) / (1 + (pi/2 alpha x)^2)``
* rectangle: ``H = clamp(alpha x + 1/2, 0, 1)``,    ``h = alpha [|x| < 1/(2 alpha)]``

Defaults follow SpikingJelly (sigmoid 4, atan 2) and the rectangle of width 1.
ASGL (:mod:`.asgl`) uses ``H_alpha`` itself in its forward pass with a learnable alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


def sigmoid_step(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return torch.sigmoid(alpha * x)


def sigmoid_grad(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    s = torch.sigmoid(alpha * x)
    return alpha * s * (1.0 - s)


def atan_step(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return 0.5 + torch.atan(0.5 * math.pi * alpha * x) / math.pi


def atan_grad(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return 0.5 * alpha / (1.0 + (0.5 * math.pi * alpha * x) ** 2)


def rectangle_step(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return torch.clamp(alpha * x + 0.5, 0.0, 1.0)


def rectangle_grad(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    inside = (alpha * x).abs() < 0.5
    return inside.to(x.dtype) * alpha


@dataclass(frozen=True)
class Surrogate:
    """A smooth step ``step(x, alpha)`` and its derivative ``grad(x, alpha)``."""

    name: str
    step: Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]
    grad: Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]
    default_alpha: float


SURROGATES: dict[str, Surrogate] = {
    "sigmoid": Surrogate("sigmoid", sigmoid_step, sigmoid_grad, 4.0),
    "atan": Surrogate("atan", atan_step, atan_grad, 2.0),
    "rectangle": Surrogate("rectangle", rectangle_step, rectangle_grad, 1.0),
}


def get_surrogate(name: str) -> Surrogate:
    """The surrogate called ``name``; a clear error lists the known ones."""
    try:
        return SURROGATES[name]
    except KeyError:
        raise ValueError(
            f"unknown surrogate {name!r}; choose one of {sorted(SURROGATES)}"
        ) from None


class _SurrogateSpike(torch.autograd.Function):
    """Forward ``[x >= 0]``; backward ``grad_out * h_alpha(x)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(x, ctx.alpha), None, None


def spike(x: torch.Tensor, surrogate: str | Surrogate = "sigmoid",
          alpha: float | None = None) -> torch.Tensor:
    """Heaviside spike ``[x >= 0]`` whose gradient is the surrogate's ``h_alpha(x)``."""
    sg = get_surrogate(surrogate) if isinstance(surrogate, str) else surrogate
    return _SurrogateSpike.apply(x, sg, sg.default_alpha if alpha is None else float(alpha))
