"""NSNN: noisy spiking neurons (Ma, Yan & Tang, "Exploiting noise as a resource for
computation and learning in SNNs", 2023; genema/Noisy-Spiking-Neuron-Nets, ``models/NILIF*.py``).

A multi-step LIF neuron whose membrane carries zero-mean noise ``eps`` of a chosen law with
scale ``sigma`` (Gaussian, logistic, triangular on ``[-sigma, sigma]``, uniform on
``[-sigma, sigma]``). Per step ``t``, with ``z = u - theta`` the noise-free distance::

    u   <- u / tau + x_t                     (decay_input=False, as the reference code)
    eps ~  noise law, per element and step
    o_t =  [z + eps >= 0]                    so  P(o_t = 1 | u) = F(z)   (F the noise's CDF)
    u   <- (u + eps) * (1 - o_t)             (the noise stays in the membrane; hard reset)

Firing is stochastic: ``o_t ~ Bernoulli(F(u - theta))``. Learning uses the gradient this
noise implies, ``dE[o_t]/du = F'(z) = f(z)``, the noise's density (Gaussian pdf, logistic
pdf = the sigmoid surrogate, triangle, rectangle). The reference code draws the Bernoulli
from ``F`` *after* also subtracting a noise sample from ``u``, which applies the noise twice;
here it is applied once, as in the paper's model.

Eval semantics: ``eval_mode="stochastic"`` (default, as the reference code: the network stays
noisy at test time, so predictions are random) or ``"deterministic"`` (``eps = 0``: a plain
LIF with hard reset).

Deployment: the **deterministic threshold neuron** (``eps = 0``: ``o_t = [u >= theta]``,
the ``"deterministic"`` eval forward), a stream population with voltage decay
``dv = 1 - 1/tau``, hard reset to 0, ``v0 = 0``. Not the noise-free expectation
``F(u - theta)``, which is an analog firing probability, not a spike. The noisy forward
(training, and eval with ``eval_mode="stochastic"``) is not deployable; the compiler says
so, naming the layers, and measures the accuracy difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from pseudosnn.neurons.base import NeuronSpec, SpikingNeuron
from pseudosnn.neurons.vanilla import expand_time

NoiseKind = Literal["gaussian", "logistic", "triangular", "uniform"]


@dataclass(frozen=True)
class NoiseLaw:
    """A zero-mean symmetric noise law of scale ``s``: sampler, CDF, density, variance."""

    name: str

    def sample(self, shape: torch.Size | tuple[int, ...], s: float, *,
               like: torch.Tensor | None = None) -> torch.Tensor:
        kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
        if self.name == "gaussian":
            return torch.randn(shape, **kw) * s
        u = torch.rand(shape, **kw)
        if self.name == "logistic":
            u = u.clamp(1e-7, 1 - 1e-7)
            return s * torch.log(u / (1.0 - u))
        if self.name == "triangular":  # sum of two U(0,1) is triangular on [0, 2]
            return s * (u + torch.rand(shape, **kw) - 1.0)
        return s * (2.0 * u - 1.0)  # uniform

    def cdf(self, x: torch.Tensor, s: float) -> torch.Tensor:
        if self.name == "gaussian":
            return 0.5 * (1.0 + torch.erf(x / (s * math.sqrt(2.0))))
        if self.name == "logistic":
            return torch.sigmoid(x / s)
        if self.name == "triangular":
            y = x.clamp(-s, s)
            return torch.where(y < 0, (y + s) ** 2 / (2 * s * s), 1.0 - (s - y) ** 2 / (2 * s * s))
        return ((x + s) / (2.0 * s)).clamp(0.0, 1.0)

    def pdf(self, x: torch.Tensor, s: float) -> torch.Tensor:
        if self.name == "gaussian":
            return torch.exp(-0.5 * (x / s) ** 2) / (s * math.sqrt(2.0 * math.pi))
        if self.name == "logistic":
            q = torch.sigmoid(x / s)
            return q * (1.0 - q) / s
        if self.name == "triangular":
            return (s - x.abs()).clamp(min=0.0) / (s * s)
        return (x.abs() <= s).to(x.dtype) / (2.0 * s)

    def variance(self, s: float) -> float:
        return {"gaussian": s * s, "logistic": (math.pi * s) ** 2 / 3.0,
                "triangular": s * s / 6.0, "uniform": s * s / 3.0}[self.name]


NOISE_LAWS: dict[str, NoiseLaw] = {k: NoiseLaw(k)
                                   for k in ("gaussian", "logistic", "triangular", "uniform")}

DEFAULT_SIGMA = {"gaussian": 0.4, "logistic": 0.4, "triangular": 0.6, "uniform": 0.4}
"""Default scales of the reference code's NILIF*.py neurons."""


class _NoisySpike(torch.autograd.Function):
    """Forward ``[z + eps >= 0]``; backward ``grad * f(z)`` with ``f`` the noise density."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, eps: torch.Tensor, law: NoiseLaw, s: float):
        ctx.save_for_backward(z)
        ctx.law, ctx.s = law, s
        return (z + eps >= 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (z,) = ctx.saved_tensors
        return grad_out * ctx.law.pdf(z, ctx.s), None, None, None


def noisy_spike(z: torch.Tensor, eps: torch.Tensor, law: NoiseLaw, s: float) -> torch.Tensor:
    return _NoisySpike.apply(z, eps, law, s)


class NoisyLIFNeuron(SpikingNeuron):
    """Noisy LIF neuron (see module docstring). Defaults follow the reference code
    (tau=2, threshold 1, T=2, Gaussian noise)."""

    family = "nsnn"

    def __init__(
        self,
        shape: tuple[int, ...] | None = None,
        *,
        T: int = 2,
        threshold: float = 1.0,
        tau: float = 2.0,
        noise: NoiseKind = "gaussian",
        sigma: float | None = None,
        eval_mode: Literal["stochastic", "deterministic"] = "stochastic",
    ) -> None:
        super().__init__()
        if int(T) != T or T < 1:
            raise ValueError(f"T must be a positive integer, got {T!r}")
        if noise not in NOISE_LAWS:
            raise ValueError(f"unknown noise {noise!r}; choose one of {sorted(NOISE_LAWS)}")
        if eval_mode not in ("stochastic", "deterministic"):
            raise ValueError(
                f"eval_mode must be 'stochastic' or 'deterministic', got {eval_mode!r}")
        self.shape = tuple(shape) if shape is not None else None
        self.T = int(T)
        self.threshold = float(threshold)
        self.tau = float(tau)
        self.law = NOISE_LAWS[noise]
        self.sigma = float(DEFAULT_SIGMA[noise] if sigma is None else sigma)
        if self.sigma <= 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        self.eval_mode = eval_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = expand_time(x, self.T)
        noisy = self.training or self.eval_mode == "stochastic"
        u = torch.zeros_like(x[0])
        out = []
        for t in range(self.T):
            u = u / self.tau + x[t]
            eps = self.law.sample(u.shape, self.sigma, like=u) if noisy else torch.zeros_like(u)
            o = noisy_spike(u - self.threshold, eps, self.law, self.sigma)
            u = (u + eps) * (1.0 - o)
            out.append(o)
        return torch.stack(out)

    def timesteps(self) -> torch.Tensor:
        return torch.tensor(self.T)

    def returns_trains(self) -> bool:
        return True  # [T, B, *f], one output per step (a max pool pools each step)

    def deploy_spec(self) -> NeuronSpec:
        where = "in training and at eval (eval_mode='stochastic'; " \
            if self.eval_mode == "stochastic" else "in training ("
        note = (f"NSNN fires stochastically {where}{self.law.name} noise, sigma="
                f"{self.sigma:g}); deployed: the deterministic threshold neuron [u >= theta] "
                "(noise 0), not the noise-free expectation F(u - theta)")
        return NeuronSpec(
            timesteps=torch.tensor(self.T), threshold=self.threshold, v0=0.0, scale=1.0,
            bias=0.0, out_scale=1.0, coupling="stream", reset="hard", v_reset=0.0,
            dv=1.0 - 1.0 / self.tau, note=note)

    def extra_repr(self) -> str:
        return (f"T={self.T}, threshold={self.threshold}, tau={self.tau}, "
                f"noise={self.law.name}(sigma={self.sigma}), eval_mode={self.eval_mode}")
