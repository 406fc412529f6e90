"""Neuron families, looked up by name in configs.

``NEURON_FAMILIES`` maps a family name to ``"module:Class"``; classes are imported only
when used, so one family's dependencies never burden another. Every family's constructor
takes ``(shape=None, **kwargs)`` where ``shape`` is the feature shape without batch/time.
"""

from __future__ import annotations

import difflib
import importlib

from pseudosnn.errors import PseudoSNNError
from pseudosnn.neurons.base import NeuronSpec, NotDeployable, SpikingNeuron

NEURON_FAMILIES: dict[str, str] = {
    "pseudo": "pseudosnn.neurons.pseudo:PseudoSpikingNeuron",
    "if": "pseudosnn.neurons.vanilla:IFNeuron",
    "lif": "pseudosnn.neurons.vanilla:LIFNeuron",
    "asgl": "pseudosnn.neurons.asgl:ASGLNeuron",
    "nsnn": "pseudosnn.neurons.nsnn:NoisyLIFNeuron",
    "multispike": "pseudosnn.neurons.multispike:MultiSpikeNeuron",
    "qcfs": "pseudosnn.neurons.qcfs:QCFSNeuron",
    "relu": "pseudosnn.neurons.relu:ReLUNeuron",
}

__all__ = ["NEURON_FAMILIES", "NeuronSpec", "NotDeployable", "SpikingNeuron",
           "UnknownNeuronFamily", "make_neuron", "neuron_class"]


class UnknownNeuronFamily(PseudoSNNError, ValueError):
    """A neuron family name that is not in ``NEURON_FAMILIES``."""


def neuron_class(family: str) -> type[SpikingNeuron]:
    """The class registered for ``family``."""
    if family not in NEURON_FAMILIES:
        close = difflib.get_close_matches(str(family), NEURON_FAMILIES, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownNeuronFamily(
            f"unknown neuron family {family!r}{hint}; known families: "
            f"{', '.join(sorted(NEURON_FAMILIES))}")
    module, attr = NEURON_FAMILIES[family].split(":")
    return getattr(importlib.import_module(module), attr)


def make_neuron(family: str, shape: tuple[int, ...] | None = None, **kwargs) -> SpikingNeuron:
    """Build a neuron of ``family`` for features of ``shape`` (e.g. ``(C, H, W)``)."""
    return neuron_class(family)(shape, **kwargs)
