"""The Pseudo-Spiking Neuron (PseudoSN, AAAI 2026): a ReLU-like unit with a learnable
number of timesteps ``T``, a learnable ``scale`` and ``bias`` and training noise that
imitates the two errors of spiking.

Training forward (one pass, no time loop), on ``x`` of shape ``[T_in, B, *f]``::

    T = min_T + (max_T - min_T) * sigmoid(logit)        rounded, straight-through
    c = scale * mean_t(x) + bias
    c <- c + eps / T  where 0 < c < 1,   eps ~ U(-1/2, 1/2) or N(0, 1)/3   (quantisation)
    c <- min(c, 1)                                                          (clipping)
    out = relu(c)                                                           [1, B, *f]

Each noise is applied with probability ``noise_prob`` (one draw per layer as in the
paper's code, or one per element with ``noise_scope="element"``). The task loss reaches
``T`` only through the quantisation noise.

Eval forward = the deployed integrate-and-fire population (DESIGN.md §2, ``v0 = 1/2``,
``theta = 1``, soft reset):

* ``eval_rule="rate"`` (default): closed form, no loop,
  ``n = clamp(floor(T*c + 1/2), 0, T)``, output ``n/T`` as ``[1, B, *f]``.
* ``eval_rule="paper"``: the paper's rule: when the input already has ``T`` steps it is
  streamed step by step, otherwise its time mean drives a constant current; explicit time
  loop; output the spike train ``[T, B, *f]`` (per-layer T only).

Calibration (``calibrating=True`` in train mode, the last epochs of the paper's recipe):
the forward is the deployed rate output ``n/T`` with a straight-through gradient (that of
``clip(c, 0, 1)``); ``T`` is not trained.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from pseudosnn.neurons.base import NeuronSpec, SpikingNeuron

Granularity = Literal["layer", "channel", "neuron"]
GRANULARITIES = ("layer", "channel", "neuron")
NOISE_TYPES = ("uniform", "gaussian")
NOISE_SCOPES = ("layer", "element")
EVAL_RULES = ("rate", "paper")

THRESHOLD = 1.0
V0 = 0.5


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def timesteps_shape(granularity: str, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Shape of the T tensor: ``()`` per layer, ``(C,1,1)``/``(C,)`` per channel, ``shape``
    per neuron (broadcastable to ``[B, *shape]``)."""
    if granularity == "layer":
        return ()
    if shape is None:
        raise ValueError(f"granularity={granularity!r} needs the feature shape: pass "
                         "shape=(C, H, W) or (F,) to the neuron")
    if granularity == "channel":
        return (shape[0],) + (1,) * (len(shape) - 1)
    return tuple(shape)


class PseudoSpikingNeuron(SpikingNeuron):
    """Pseudo-Spiking Neuron with learnable per-layer/channel/neuron timesteps."""

    family = "pseudo"

    def __init__(
        self,
        shape: tuple[int, ...] | None = None,
        *,
        granularity: Granularity = "layer",
        init_T: float = 8,
        min_T: int = 1,
        max_T: int = 16,
        noise_type: Literal["uniform", "gaussian"] = "uniform",
        noise_prob: float = 0.5,
        noise_scope: Literal["layer", "element"] = "layer",
        scale: float = 1.0,
        eval_rule: Literal["rate", "paper"] = "rate",
    ) -> None:
        super().__init__()
        _check_choice("granularity", granularity, GRANULARITIES)
        _check_choice("noise_type", noise_type, NOISE_TYPES)
        _check_choice("noise_scope", noise_scope, NOISE_SCOPES)
        _check_choice("eval_rule", eval_rule, EVAL_RULES)
        if not (1 <= min_T <= max_T):
            raise ValueError(f"need 1 <= min_T <= max_T, got min_T={min_T}, max_T={max_T}")
        if max_T > min_T and not (min_T < init_T < max_T):
            raise ValueError(f"init_T={init_T} must lie strictly between min_T={min_T} and "
                             f"max_T={max_T} (T = min_T + (max_T-min_T)*sigmoid(logit))")
        if not 0.0 <= noise_prob <= 1.0:
            raise ValueError(f"noise_prob={noise_prob} must be a probability in [0, 1]")
        if eval_rule == "paper" and granularity != "layer":
            raise ValueError("eval_rule='paper' streams spike trains of one length per layer; "
                             f"it needs granularity='layer' (got {granularity!r}); use "
                             "eval_rule='rate' for per-channel or per-neuron T")
        self.shape = tuple(shape) if shape is not None else None
        self.granularity = granularity
        self.init_T, self.min_T, self.max_T = float(init_T), int(min_T), int(max_T)
        self.noise_type, self.noise_prob, self.noise_scope = noise_type, noise_prob, noise_scope
        self.eval_rule = eval_rule
        self.calibrating = False
        ratio = (init_T - min_T) / (max_T - min_T) if max_T > min_T else 0.5
        logit = math.log(ratio / (1.0 - ratio))
        self.logit = torch.nn.Parameter(torch.full(timesteps_shape(granularity, shape), logit))
        self.scale = torch.nn.Parameter(torch.tensor(float(scale)))
        self.bias = torch.nn.Parameter(torch.tensor(0.0))

    def extra_repr(self) -> str:
        return (f"shape={self.shape}, granularity={self.granularity}, T in "
                f"[{self.min_T}, {self.max_T}], noise={self.noise_type}/{self.noise_scope} "
                f"p={self.noise_prob}, eval_rule={self.eval_rule}")

    # --- timesteps ------------------------------------------------------------------
    def timesteps_float(self) -> torch.Tensor:
        """``T`` rounded with a straight-through estimator (differentiable in ``logit``)."""
        t = self.min_T + (self.max_T - self.min_T) * torch.sigmoid(self.logit)
        return round_ste(t)

    def timesteps(self) -> torch.Tensor:
        """Integer T (int64, detached), shape ``()``, ``(C,1,1)``/``(C,)`` or ``shape``."""
        return self.timesteps_float().detach().round().long()

    # --- forward --------------------------------------------------------------------
    def current(self, x: torch.Tensor) -> torch.Tensor:
        """``c = scale * mean_t(x) + bias`` as ``[1, B, *f]``."""
        return x.mean(dim=0, keepdim=True) * self.scale + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.calibrating:
            return self._noisy_forward(x)
        if self.training:  # calibration: deployed output, straight-through gradient
            c = self.current(x)
            clipped = c.clamp(0.0, 1.0)
            return clipped + (self._rate_output(c) - clipped).detach()
        if self.eval_rule == "rate":
            return self._rate_output(self.current(x))
        return self._paper_forward(x)

    def _base_noise(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise_type == "uniform":
            return torch.rand_like(x) - 0.5
        return torch.randn_like(x) / 3.0

    def _draw(self, x: torch.Tensor) -> torch.Tensor | bool:
        """Whether a noise applies: one Bernoulli draw per layer or one per element."""
        if self.noise_scope == "layer":
            return bool(torch.rand(()) < self.noise_prob)
        return torch.rand_like(x) < self.noise_prob

    def _noisy_forward(self, x: torch.Tensor) -> torch.Tensor:
        T = self.timesteps_float()
        c = self.current(x)
        if self.noise_prob > 0:
            apply = self._draw(c)
            if apply is not False:
                inside = (c > 0) & (c < 1)
                mask = inside if apply is True else inside & apply
                c = c + self._base_noise(c) * mask / T
            apply = self._draw(c)
            if apply is True:
                c = c.clamp(max=1.0)
            elif apply is not False:
                c = torch.where(apply, c.clamp(max=1.0), c)
        return F.relu(c)

    def _rate_output(self, c: torch.Tensor) -> torch.Tensor:
        """Deployed rate output ``clamp(floor(T*c + 1/2), 0, T) / T``."""
        T = self.timesteps().to(c.dtype)
        n = torch.minimum(torch.clamp(torch.floor(T * c + V0), min=0.0), T)
        return n / T

    def _paper_forward(self, x: torch.Tensor) -> torch.Tensor:
        T = int(self.timesteps())
        if x.shape[0] == T:
            drive = x * self.scale + self.bias
        else:
            drive = self.current(x).expand(T, *x.shape[1:])
        v = torch.full_like(drive[0], V0)
        spikes = []
        for t in range(T):
            v = v + drive[t]
            s = (v >= THRESHOLD).to(v.dtype)
            v = v - s * THRESHOLD
            spikes.append(s)
        return torch.stack(spikes, dim=0)

    def returns_trains(self) -> bool:
        return self.eval_rule == "paper"

    # --- deployment -----------------------------------------------------------------
    def deploy_spec(self) -> NeuronSpec:
        """Integrate-and-fire population: ``theta = 1``, ``v0 = 1/2``, soft reset, the
        current ``scale * x + bias``. Coupling ``rate`` (the default rule) or ``stream``
        (the paper's rule: stream when the source has the same T, rate otherwise; the
        compiler decides per edge)."""
        return NeuronSpec(
            timesteps=self.timesteps(),
            threshold=THRESHOLD,
            v0=V0,
            scale=self.scale.detach().clone(),
            bias=self.bias.detach().clone(),
            coupling="rate" if self.eval_rule == "rate" else "stream",
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")
