"""What every neuron family tells the compiler: its deployed (eval) semantics.

Tensor convention of the whole model zoo (time-major, like the paper's code): a neuron
takes ``x`` of shape ``[T_in, B, *features]`` and returns ``[T_out, B, *features]``.
Rate-based families (PseudoSN, MultiSpike, QCFS) return ``T_out = 1`` holding rates;
multi-step families (IF/LIF, ASGL, NSNN) broadcast a ``T_in = 1`` input to their own T
(direct encoding) and return spike trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from pseudosnn.errors import PseudoSNNError


@dataclass(frozen=True)
class NeuronSpec:
    """The deployed neuron as a spiking population (DESIGN.md §2).

    The population's current is ``c = scale * x + bias`` where ``x`` is the layer's
    linear output (acting on the rates of its inputs); it fires with threshold
    ``threshold`` from ``v0`` for ``timesteps`` steps (a tensor that broadcasts to the
    feature shape: scalar per layer, ``(C,1,1)``/``(C,)`` per channel, the feature shape
    per neuron). Downstream layers see ``out_scale * n / T``. ``coupling`` is the
    preferred input coupling (``rate`` or ``stream``).

    The membrane follows the contract's step (``compiler/spiking/semantics.py``): current
    decay ``du`` (1: the current has no state), voltage decay ``dv`` (0: no leak),
    ``reset`` soft (subtract θ) or hard (to ``v_reset``), firing comparison ``fire``
    (``">="`` or ``">"``). The defaults are the integrate-and-fire neuron. ``note`` says
    in one line how the family's *training* forward differs from this deployed neuron
    (None: it does not); the compiler measures that difference on calibration data.
    """

    timesteps: torch.Tensor
    threshold: float = 1.0
    v0: float = 0.5
    scale: torch.Tensor | float = 1.0
    bias: torch.Tensor | float = 0.0
    out_scale: float = 1.0
    coupling: Literal["rate", "stream"] = "rate"
    reset: Literal["soft", "hard"] = "soft"
    du: float = 1.0
    dv: float = 0.0
    v_reset: float = 0.0
    fire: Literal[">=", ">"] = ">="
    note: str | None = None


class NotDeployable(PseudoSNNError, TypeError):
    """A neuron family whose eval semantics have no deployed spiking equivalent."""


class SpikingNeuron(torch.nn.Module):
    """Base class of every neuron family. Subclasses implement ``forward`` on
    ``[T_in, B, *features]`` and ``deploy_spec``; ``family`` names them in configs."""

    family: str = "base"

    def timesteps(self) -> torch.Tensor:
        """Integer-valued T (a tensor that broadcasts to the feature shape)."""
        raise NotImplementedError

    def deploy_spec(self) -> NeuronSpec:
        raise NotDeployable(f"neuron family {self.family!r} cannot be deployed as "
                            "integrate-and-fire populations")

    def returns_trains(self) -> bool:
        """Whether the eval forward returns spike trains ``[T, B, *f]`` (multi-step
        families, the paper's eval rule) rather than rates ``[1, B, *f]``."""
        return False

    def rate_spike_steps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """The deployed (rate-coupled) population's spikes, one step ``[B, *f]`` at a time,
        in closed form (DESIGN.md §2): with ``c = scale·mean_t(x) + bias`` the count after
        ``k`` steps is ``N(k) = clamp(floor((v0 + min(k, T)·c)/θ), 0, min(k, T))`` and step
        ``k`` fires ``N(k + 1) − N(k)`` (what ``semantics.rate_spike_train`` computes)."""
        spec = self.deploy_spec()
        c = x.mean(dim=0) * spec.scale + spec.bias
        T = torch.as_tensor(spec.timesteps).to(c.dtype)

        def count(k: int) -> torch.Tensor:
            kk = torch.clamp(T, max=float(k))
            return torch.minimum(torch.clamp(torch.floor((spec.v0 + kk * c) / spec.threshold),
                                             min=0.0), kk)

        prev = count(0)
        for k in range(int(T.max())):
            cur = count(k + 1)
            yield cur - prev
            prev = cur
