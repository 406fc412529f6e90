"""ASGL: Adaptive Smoothing Gradient Learning (Wang et al., ICML 2023; Windere/ASGL-SNN,
``model/activation.py: EfficientNoisySpikeII`` and ``model/cell.py: LIFCell``).

A multi-step LIF neuron with hard reset whose *forward* mixes spikes and a smooth step.
Per step ``t``, with ``z = v - theta`` and ``H_alpha`` a smooth step of sharpness ``alpha``
(:mod:`.surrogate`: sigmoid, atan or rectangle)::

    v   <- sigmoid(d) * v + x_t                     (learnable decay, init sigmoid(d) = decay)
    m   ~  Bernoulli(1 - p)  per element, fresh each step      (training only)
    o_t =  H_alpha(z) + m * ([z >= 0] - H_alpha(z))            (the m term is detached)
    v   <- v * (1 - o_t) + v_reset * o_t                        (hard reset)

so a fraction ``1 - p`` of the outputs are exact spikes and a fraction ``p`` are analog
``H_alpha(z)`` ("spike noise"); the gradient always flows through ``H_alpha``, including to
``alpha`` (learnable, parametrised as ``log alpha``, per layer, channel or neuron).
``p`` decays by ``gamma`` at milestones (fractions of the run): :func:`noise_rate`,
:meth:`ASGLNeuron.set_epoch`, :func:`set_noise_epoch`.

Eval semantics: ``o_t = [z >= 0]`` (Heaviside spikes, deterministic), same LIF dynamics;
``eval_spike=False`` keeps the smooth ``H_alpha`` instead (an analog network).

Deployment: the eval (spiking) forward exactly, as a stream population with voltage
decay ``dv = 1 - sigmoid(d)``, hard reset to ``v_reset``, ``v >= theta``, ``v0 = 0``. The
training forward (analog noise with probability ``p``) is not deployable; the compiler
says so and measures the accuracy difference. ``eval_spike=False`` (analog outputs) does
not deploy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from pseudosnn.neurons.base import NeuronSpec, NotDeployable, SpikingNeuron
from pseudosnn.neurons.surrogate import get_surrogate
from pseudosnn.neurons.vanilla import expand_time

Granularity = Literal["layer", "channel", "neuron"]

ASGL_MILESTONES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.95)
"""Default noise-rate milestones (fractions of the run), ASGL's ``--ns_milestone``."""


def noise_rate(p0: float, gamma: float, milestones: Sequence[float], epoch: int,
               num_epochs: int) -> float:
    """ASGL's multi-step noise rate during ``epoch`` (0-based): ``p0 * gamma**k`` where ``k``
    counts the milestone epochs ``int(m * num_epochs)`` already finished (``< epoch``)."""
    k = sum(1 for m in milestones if int(m * num_epochs) < epoch)
    return p0 * gamma**k


def param_shape(shape: tuple[int, ...] | None, granularity: Granularity) -> tuple[int, ...]:
    """Shape of a per-layer / per-channel / per-neuron parameter for features ``shape``."""
    if granularity == "layer":
        return ()
    if shape is None:
        raise ValueError(f"granularity={granularity!r} needs the feature shape; pass shape=")
    if granularity == "channel":
        return (shape[0],) + (1,) * (len(shape) - 1)
    if granularity == "neuron":
        return tuple(shape)
    raise ValueError(f"granularity must be 'layer', 'channel' or 'neuron', got {granularity!r}")


class ASGLNeuron(SpikingNeuron):
    """ASGL hybrid LIF neuron (see module docstring). Defaults follow the ASGL README's
    CIFAR-100 recipe (T=2, decay 0.5, threshold 1, sigmoid, p=0.2)."""

    family = "asgl"

    def __init__(
        self,
        shape: tuple[int, ...] | None = None,
        *,
        T: int = 2,
        threshold: float = 1.0,
        decay: float = 0.5,
        learn_decay: bool = True,
        v_reset: float = 0.0,
        surrogate: str = "sigmoid",
        alpha: float = 1.0,
        learn_alpha: bool = True,
        granularity: Granularity = "layer",
        p: float = 0.2,
        gamma: float = 1.0,
        milestones: Sequence[float] = ASGL_MILESTONES,
        eval_spike: bool = True,
    ) -> None:
        super().__init__()
        if int(T) != T or T < 1:
            raise ValueError(f"T must be a positive integer, got {T!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"noise probability p must lie in [0, 1], got {p}")
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.shape = tuple(shape) if shape is not None else None
        self.T = int(T)
        self.threshold = float(threshold)
        self.v_reset = float(v_reset)
        self.surrogate = get_surrogate(surrogate)
        self.granularity = granularity
        self.p0 = float(p)
        self.p = float(p)
        self.gamma = float(gamma)
        self.milestones = tuple(float(m) for m in milestones)
        self.eval_spike = eval_spike
        logit = torch.tensor(math.log(decay / (1.0 - decay)))
        self.decay_logit = nn.Parameter(logit, requires_grad=learn_decay)
        log_alpha = torch.full(param_shape(self.shape, granularity), math.log(alpha))
        self.log_alpha = nn.Parameter(log_alpha, requires_grad=learn_alpha)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def set_epoch(self, epoch: int, num_epochs: int) -> None:
        """Set ``p`` for ``epoch`` from the milestone schedule (stateless: resume-safe)."""
        self.p = noise_rate(self.p0, self.gamma, self.milestones, epoch, num_epochs)

    def hybrid_spike(self, z: torch.Tensor) -> torch.Tensor:
        """One step's output for ``z = v - theta`` (training: spikes with analog noise)."""
        heaviside = (z >= 0).to(z.dtype)
        if not self.training:
            return heaviside if self.eval_spike else self.surrogate.step(z, self.alpha)
        smooth = self.surrogate.step(z, self.alpha)
        mask = torch.bernoulli(torch.full_like(z, 1.0 - self.p))
        return smooth + ((heaviside - smooth) * mask).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = expand_time(x, self.T)
        decay = torch.sigmoid(self.decay_logit)
        v = torch.zeros_like(x[0])
        out = []
        for t in range(self.T):
            v = decay * v + x[t]
            o = self.hybrid_spike(v - self.threshold)
            v = v * (1.0 - o) + self.v_reset * o
            out.append(o)
        return torch.stack(out)

    def timesteps(self) -> torch.Tensor:
        return torch.tensor(self.T)

    def returns_trains(self) -> bool:
        return True  # [T, B, *f], one output per step (a max pool pools each step)

    def deploy_spec(self) -> NeuronSpec:
        if not self.eval_spike:
            raise NotDeployable(
                "ASGLNeuron with eval_spike=False outputs the analog H_alpha at eval, not "
                "spikes; set eval_spike=True to deploy its spiking forward")
        decay = float(torch.sigmoid(self.decay_logit.detach()))
        note = None if self.p0 == 0 else (
            f"ASGL trains with spike noise (a fraction p={self.p0:g} of the outputs are the "
            f"analog H_alpha); deployed: its eval forward, Heaviside spikes")
        return NeuronSpec(
            timesteps=torch.tensor(self.T), threshold=self.threshold, v0=0.0, scale=1.0,
            bias=0.0, out_scale=1.0, coupling="stream", reset="hard", v_reset=self.v_reset,
            dv=1.0 - decay, note=note)

    def extra_repr(self) -> str:
        return (f"T={self.T}, threshold={self.threshold}, surrogate={self.surrogate.name}, "
                f"granularity={self.granularity}, p={self.p}, gamma={self.gamma}")


def set_noise_epoch(model: nn.Module, epoch: int, num_epochs: int) -> float | None:
    """Apply the noise-rate schedule to every ASGL neuron of ``model``; returns the last p
    set (None when the model has no ASGL neuron)."""
    p = None
    for m in model.modules():
        if isinstance(m, ASGLNeuron):
            m.set_epoch(epoch, num_epochs)
            p = m.p
    return p
