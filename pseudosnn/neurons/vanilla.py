"""Vanilla multi-step spiking neurons (the paper's ``configs/vanilla``): IF and LIF with a
fixed number of timesteps ``T``, surrogate gradients, trained by backpropagation through
time (BPTT: the time loop below is unrolled by autograd).

Per step ``t`` (``x_t`` the input current, ``v`` the membrane, ``theta`` the threshold)::

    IF   charge:  v <- v + x_t
    LIF  charge:  v <- v + (x_t - (v - v_rest)) / tau     (decay_input=True)
                  v <- v - (v - v_rest) / tau + x_t       (decay_input=False, the paper's)
    fire:         s_t = [v >= theta]    (backward: surrogate h_alpha(v - theta))
    soft reset:   v <- v - s_t * theta
    hard reset:   v <- v * (1 - s_t) + v_reset * s_t

``v_rest`` is ``v_reset`` with hard reset and 0 with soft reset (as SpikingJelly). The
membrane starts at ``v0``. ``detach_reset`` cuts the gradient through the reset (the paper
uses it). The output is ``amplitude * s_t`` of shape ``[T, B, *features]``; a ``T_in = 1``
input is repeated over the T steps (direct encoding: a constant current).

Eval semantics: identical to training (deterministic), only the gradient differs.

Deployment (the spiking graph's populations, ``compiler/spiking/semantics.py``): every
IF and LIF neuron *is* a stream-coupled population (threshold ``theta``, start ``v0``,
out_scale ``amplitude``, the same reset and ``>=``). IF: no leak (``dv = 0``). LIF: the
forward-Euler discretisation, step ``dt = 1``, of ``tau·dv/dt = -(v - v_rest) + x``, i.e.
``v <- v + (x - (v - v_rest))/tau``, is the contract's voltage decay ``dv = 1/tau`` with
the input scaled by ``1/tau`` (``decay_input=True``) or not (``decay_input=False``: the
input is added after the decay, as the paper's code), plus the constant ``v_rest/tau``
in the bias; the current has no state (``du = 1``).
"""

from __future__ import annotations

from typing import Literal

import torch

from pseudosnn.neurons.base import NeuronSpec, SpikingNeuron
from pseudosnn.neurons.surrogate import get_surrogate, spike

Reset = Literal["soft", "hard"]


def expand_time(x: torch.Tensor, T: int) -> torch.Tensor:
    """Broadcast a time-major input ``[T_in, B, ...]`` to ``T`` steps (``T_in`` must be 1 or T)."""
    if x.dim() < 2:
        raise ValueError(f"expected a time-major input [T, B, ...], got shape {tuple(x.shape)}")
    if x.shape[0] == T:
        return x
    if x.shape[0] == 1:
        return x.expand(T, *x.shape[1:])
    raise ValueError(
        f"input has {x.shape[0]} timesteps but this neuron runs T={T}; feed it T_in=1 "
        f"(direct encoding) or T_in={T} (use the same T for every multi-step layer)"
    )


class MultiStepNeuron(SpikingNeuron):
    """Shared machinery of IF/LIF-type neurons with a fixed ``T`` (see module docstring)."""

    family = "multistep"

    def __init__(
        self,
        shape: tuple[int, ...] | None = None,
        *,
        T: int = 4,
        threshold: float = 1.0,
        v0: float = 0.0,
        reset: Reset = "soft",
        v_reset: float = 0.0,
        surrogate: str = "sigmoid",
        alpha: float | None = None,
        detach_reset: bool = True,
        amplitude: float = 1.0,
    ) -> None:
        super().__init__()
        if int(T) != T or T < 1:
            raise ValueError(f"T must be a positive integer, got {T!r}")
        if reset not in ("soft", "hard"):
            raise ValueError(f"reset must be 'soft' or 'hard', got {reset!r}")
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        self.shape = tuple(shape) if shape is not None else None
        self.T = int(T)
        self.threshold = float(threshold)
        self.v0 = float(v0)
        self.reset = reset
        self.v_reset = float(v_reset)
        self.surrogate = get_surrogate(surrogate)
        self.alpha = self.surrogate.default_alpha if alpha is None else float(alpha)
        self.detach_reset = detach_reset
        self.amplitude = float(amplitude)

    def charge(self, v: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        return v + x_t

    def fire(self, v: torch.Tensor) -> torch.Tensor:
        return spike(v - self.threshold, self.surrogate, self.alpha)

    def apply_reset(self, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if self.detach_reset:
            s = s.detach()
        if self.reset == "soft":
            return v - s * self.threshold
        return v * (1.0 - s) + self.v_reset * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = expand_time(x, self.T)
        v = torch.full_like(x[0], self.v0)
        spikes = []
        for t in range(self.T):
            v = self.charge(v, x[t])
            s = self.fire(v)
            v = self.apply_reset(v, s)
            spikes.append(s)
        out = torch.stack(spikes)
        return out * self.amplitude if self.amplitude != 1.0 else out

    def timesteps(self) -> torch.Tensor:
        return torch.tensor(self.T)

    def returns_trains(self) -> bool:
        return True

    def extra_repr(self) -> str:
        return (f"T={self.T}, threshold={self.threshold}, v0={self.v0}, reset={self.reset}, "
                f"surrogate={self.surrogate.name}(alpha={self.alpha})")


class IFNeuron(MultiStepNeuron):
    """Multi-step integrate-and-fire neuron (no leak); see the module docstring.

    Deployed as a stream population with its reset (soft, or hard to ``v_reset``)."""

    family = "if"

    def deploy_spec(self) -> NeuronSpec:
        return NeuronSpec(
            timesteps=torch.tensor(self.T), threshold=self.threshold, v0=self.v0,
            scale=1.0, bias=0.0, out_scale=self.amplitude, coupling="stream",
            reset=self.reset, v_reset=self.v_reset if self.reset == "hard" else 0.0,
        )


class LIFNeuron(MultiStepNeuron):
    """Multi-step leaky integrate-and-fire neuron with time constant ``tau`` (the paper's
    vanilla baseline: ``tau=2``, ``decay_input=False``, soft reset, ``detach_reset``).

    Deployed as a stream population with voltage decay ``dv = 1/tau`` (module docstring).
    """

    family = "lif"

    def __init__(self, shape: tuple[int, ...] | None = None, *, tau: float = 2.0,
                 decay_input: bool = False, **kwargs) -> None:
        super().__init__(shape, **kwargs)
        if tau < 1.0:
            raise ValueError(f"tau must be >= 1 (tau=1 forgets everything each step), got {tau}")
        self.tau = float(tau)
        self.decay_input = decay_input

    def charge(self, v: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        v_rest = self.v_reset if self.reset == "hard" else 0.0
        if self.decay_input:
            return v + (x_t - (v - v_rest)) / self.tau
        return v - (v - v_rest) / self.tau + x_t

    def deploy_spec(self) -> NeuronSpec:
        dv = 1.0 / self.tau
        v_rest = self.v_reset if self.reset == "hard" else 0.0
        return NeuronSpec(
            timesteps=torch.tensor(self.T), threshold=self.threshold, v0=self.v0,
            scale=dv if self.decay_input else 1.0, bias=v_rest * dv,
            out_scale=self.amplitude, coupling="stream", reset=self.reset,
            v_reset=self.v_reset if self.reset == "hard" else 0.0, dv=dv,
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tau={self.tau}, decay_input={self.decay_input}"
