"""The trained network run as an ANN on the same chip, and where each SNN layer breaks
even with it.

Two ANNs, each with two dataflows (``counting.ann_accesses``: no reuse as Lemaire et al.,
maximal reuse as the bound of Dampfhoffer et al.):

* ``full``: the chip's native arithmetic and 32-bit data (``activation_bits``) everywhere;
* ``quantised`` (Yan et al.): the ANN an SNN with ``T`` steps is equivalent to, on the
  same chip: weights of ``weight_bits`` (as deployed), activations of ``ceil(log2(T + 1))``
  bits where ``T`` is the largest of the neurons that produce them (the analog image and
  the logits keep ``activation_bits``, accumulated sums ``state_bits``); it accumulates
  with the chip's adder, as the SNN does, and its multiplier is the chip's scaled by the
  product of the operand widths, ``E_mult·b_a·b_w/activation_bits²`` (a multiplier's
  energy grows with that product: Horowitz's int8 and int32 rows, 0.2 and 3.1 pJ, agree).

Per layer: compute ``MACs·E_mac + adds·E_add + biases·E_bias`` (+ a max pool's compares
at the SNN's ``E_compare``); memory: input reads at the
input width in a memory holding the input, weight and bias reads at the weight width in
one holding them, output writes at the output width in one holding the output;
addressing ``counting.address_adds·E_addr_add``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.counting import Layer
from pseudosnn.simulator.energy.model import EnergyModel

INPUT = "input"
VARIANTS = {"full": (False, False), "full_max_reuse": (False, True),
            "quantised": (True, False), "quantised_max_reuse": (True, True)}


def quantised_bits(timesteps: int) -> int:
    """Activation bits of the ANN equivalent to a neuron with ``T`` steps (Yan et al.)."""
    return max(1, math.ceil(math.log2(timesteps + 1)))


@dataclass(frozen=True)
class Arithmetic:
    """Widths (bits) and energies (pJ) one ANN layer is priced with."""

    in_bits: float
    out_bits: float
    weight_bits: float
    mac_pj: float
    add_pj: float
    bias_pj: float


def arithmetic(m: EnergyModel, layer: Layer, timesteps: Mapping[str, int],
               quantised: bool) -> Arithmetic:
    """The widths and energies of ``layer`` in the full or the quantised ANN."""
    if not quantised:
        b = m.activation_bits
        return Arithmetic(b, b, b, m.mac_pj, m.add_pj, m.bias_pj)
    if INPUT in layer.reads:
        a_in = m.activation_bits
    elif layer.reads:
        a_in = quantised_bits(max(timesteps[r] for r in layer.reads))
    else:
        a_in = m.state_bits
    a_out = quantised_bits(timesteps[layer.feeds]) if layer.feeds else m.activation_bits
    mult = m.mult_pj * a_in * m.weight_bits / m.activation_bits ** 2
    return Arithmetic(a_in, a_out, m.weight_bits, mult + m.add_pj, m.add_pj, m.bias_pj)


def layer_energy(m: EnergyModel, layer: Layer, ar: Arithmetic, reuse: bool = False
                 ) -> dict[str, float]:
    """``{term: pJ}`` of one trained layer run as an ANN for one sample."""
    ops, acc = counting.layer_ops(layer), counting.ann_accesses(layer, reuse)
    i, o, w = ar.in_bits / 8, ar.out_bits / 8, ar.weight_bits / 8
    price = m.memory_pj_per_byte
    params = counting.layer_weights(layer) + counting.layer_biases(layer)
    memory = (acc["input_reads"] * i * price(math.prod(layer.in_shape) * i)
              + (acc["weight_reads"] + acc["bias_reads"]) * w * price(params * w)
              + acc["output_writes"] * o * price(math.prod(layer.out_shape) * o))
    biases = math.prod(layer.out_shape) if layer.op in ("conv", "linear") else 0
    compute = ops["macs"] * ar.mac_pj + ops["adds"] * ar.add_pj + biases * ar.bias_pj \
        + ops.get("compares", 0) * m.compare_pj  # a max pool's, priced as the SNN's
    return {"compute": compute,
            "memory": memory,
            "addressing": counting.address_adds(layer) * m.address_add_pj, "routing": 0.0}


def baselines(m: EnergyModel, layers: Sequence[Layer], timesteps: Mapping[str, int]
              ) -> dict[str, list[dict[str, float]]]:
    """Per variant (:data:`VARIANTS`), ``{term: pJ}`` of every layer of ``layers``;
    ``timesteps``: the largest ``T`` of every neuron (population) by name."""
    out = {}
    for variant, (quantised, reuse) in VARIANTS.items():
        out[variant] = [layer_energy(m, layer, arithmetic(m, layer, timesteps, quantised),
                                     reuse) for layer in layers]
    return out


def break_even(e_snn: float, e_ann: float, variable: float, sops: float,
               synapses: int) -> float | None:
    """Spikes per synapse at which a layer's SNN energy ``e_snn`` equals its ANN
    counterpart's ``e_ann``, scaling the energy of its incoming events (``variable``, at
    ``sops`` SOPs) with them: ``E(ρ) = (e_snn − variable) + ρ·synapses·variable/sops``.
    0 when the layer's other costs alone exceed ``e_ann``; None when it receives no
    events (nothing to scale)."""
    if sops <= 0 or synapses <= 0 or variable <= 0:
        return None
    return max(0.0, (e_ann - (e_snn - variable)) * sops / (variable * synapses))
