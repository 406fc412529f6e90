"""ANN-to-SNN conversion of a plain ReLU network by threshold calibration.

A zoo model built with the ``relu`` neuron family is run in eval mode on a calibration set;
each ReLU layer ``l`` gets a threshold ``theta_l`` from its post-ReLU activations:

* ``method="max"``: ``theta_l = max a_l`` (Diehl et al. 2015, data-based normalisation);
* ``method="percentile"``: ``theta_l`` = the ``percentile``-th percentile of the *positive*
  activations (Rueckauer et al. 2017, robust normalisation; zeros are left out because a
  ReLU layer is mostly zeros). With ``max_samples`` set, it is estimated from a uniform
  random subsample of at most that many values per batch.

Every ReLU is then replaced by an integrate-and-fire neuron with threshold ``theta_l``,
half-threshold start ``v0 = theta_l/2``, soft reset and ``T`` steps, emitting spikes worth
``theta_l`` (so the next layer sees ``theta_l * n/T ~ relu(x)`` clipped at ``theta_l``):

* ``coupling="rate"``: :class:`~pseudosnn.neurons.qcfs.QCFSNeuron` with ``L = T`` and a
  frozen ``lambda = theta_l``, i.e. exactly the rate-coupled population
  ``n = clamp(floor(T*x/theta + 1/2), 0, T)`` (closed form, one pass);
* ``coupling="stream"``: :class:`~pseudosnn.neurons.vanilla.IFNeuron` run for ``T`` steps
  on per-step input (classic converted SNN; error shrinks as T grows).

Both are deployable (``deploy_spec`` of every neuron succeeds). A rate-converted model
rebuilds from its ``neuron_config`` (family ``qcfs``) plus its state dict (``lam``); a
stream-converted model keeps its thresholds in the neurons' attributes only.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from pseudosnn.errors import PseudoSNNError
from pseudosnn.neurons.qcfs import QCFSNeuron
from pseudosnn.neurons.relu import ReLUNeuron
from pseudosnn.neurons.vanilla import IFNeuron

Method = Literal["max", "percentile"]
Coupling = Literal["rate", "stream"]


class ConversionError(PseudoSNNError, ValueError):
    """The model or the calibration data cannot be converted."""


@dataclass(frozen=True)
class Conversion:
    """A converted model and the per-layer thresholds (keyed by neuron module name)."""

    model: nn.Module
    thresholds: dict[str, float]
    dead_layers: tuple[str, ...]
    T: int
    coupling: Coupling
    method: Method


def _relu_layers(model: nn.Module) -> dict[str, ReLUNeuron]:
    layers = {name: m for name, m in model.named_modules() if isinstance(m, ReLUNeuron)}
    if not layers:
        raise ConversionError(
            "the model has no ReLU neurons to convert; build it with neuron={'family': 'relu'}")
    return layers


def _batches(data: torch.Tensor | Iterable) -> Iterable[torch.Tensor]:
    if isinstance(data, torch.Tensor):
        yield data
        return
    for item in data:
        yield item[0] if isinstance(item, (tuple, list)) else item


@torch.no_grad()
def calibrate_thresholds(
    model: nn.Module, data: torch.Tensor | Iterable, *, method: Method = "percentile",
    percentile: float = 99.99, max_samples: int | None = 1_000_000, seed: int = 0,
) -> dict[str, float]:
    """Per-ReLU-layer thresholds from the activations on ``data`` (a tensor of inputs or an
    iterable of input batches / ``(inputs, labels)`` pairs); 0.0 marks a layer that never fired.
    """
    if method not in ("max", "percentile"):
        raise ConversionError(f"method must be 'max' or 'percentile', got {method!r}")
    if not 0.0 < percentile <= 100.0:
        raise ConversionError(f"percentile must lie in (0, 100], got {percentile}")
    layers = _relu_layers(model)
    peaks = {name: 0.0 for name in layers}
    samples: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    gen = torch.Generator().manual_seed(seed)

    def hook(name: str):
        def record(_m, _inp, out: torch.Tensor) -> None:
            flat = out.detach().flatten().float().cpu()
            peaks[name] = max(peaks[name], float(flat.max())) if flat.numel() else peaks[name]
            if method == "percentile":
                pos = flat[flat > 0]
                if max_samples is not None and pos.numel() > max_samples:
                    pos = pos[torch.randperm(pos.numel(), generator=gen)[:max_samples]]
                samples[name].append(pos)
        return record

    was_training = model.training
    model.eval()
    handles = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
    try:
        seen = 0
        for x in _batches(data):
            model(x)
            seen += 1
        if not seen:
            raise ConversionError("the calibration set is empty")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if method == "max":
        return peaks
    out = {}
    for name, parts in samples.items():
        pos = torch.cat(parts) if parts else torch.empty(0)
        if pos.numel() == 0:
            out[name] = 0.0
            continue
        k = max(1, min(pos.numel(), int(round(percentile / 100.0 * pos.numel()))))
        out[name] = float(pos.kthvalue(k).values)
    return out


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, module)


def replace_relus(model: nn.Module, thresholds: dict[str, float], *, T: int,
                  coupling: Coupling = "rate") -> nn.Module:
    """A copy of ``model`` whose ReLU neurons are IF neurons with the given thresholds."""
    if coupling not in ("rate", "stream"):
        raise ConversionError(f"coupling must be 'rate' or 'stream', got {coupling!r}")
    if int(T) != T or T < 1:
        raise ConversionError(f"T must be a positive integer, got {T!r}")
    converted = copy.deepcopy(model)
    for name, relu in _relu_layers(converted).items():
        if name not in thresholds:
            raise ConversionError(f"no threshold for ReLU layer {name!r}")
        theta = float(thresholds[name])
        if not theta > 0:
            raise ConversionError(f"threshold of layer {name!r} is {theta}; it must be positive")
        if coupling == "rate":
            new: nn.Module = QCFSNeuron(relu.shape, L=int(T), init_lambda=theta,
                                        learn_lambda=False)
        else:
            new = IFNeuron(relu.shape, T=int(T), threshold=theta, v0=theta / 2.0,
                           reset="soft", amplitude=theta)
        _set_submodule(converted, name, new)
    if hasattr(converted, "neuron_config"):
        converted.neuron_config = (
            {"family": "qcfs", "L": int(T), "learn_lambda": False} if coupling == "rate"
            else {"family": "if", "T": int(T), "reset": "soft"})
    return converted.eval()


def convert_relu_model(
    model: nn.Module, calibration: torch.Tensor | Iterable, *, T: int,
    method: Method = "percentile", percentile: float = 99.99, coupling: Coupling = "rate",
    max_samples: int | None = 1_000_000,
) -> Conversion:
    """Calibrate thresholds on ``calibration`` and replace every ReLU (see module docstring).

    A layer that never fired on the calibration set gets threshold 1.0 and is listed in
    ``dead_layers``.
    """
    thresholds = calibrate_thresholds(model, calibration, method=method, percentile=percentile,
                                      max_samples=max_samples)
    dead = tuple(name for name, t in thresholds.items() if t <= 0)
    thresholds = {name: (t if t > 0 else 1.0) for name, t in thresholds.items()}
    converted = replace_relus(model, thresholds, T=T, coupling=coupling)
    return Conversion(converted, thresholds, dead, int(T), coupling, method)
