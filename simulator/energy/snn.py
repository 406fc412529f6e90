"""Energy of one deployed layer (a :class:`~pseudosnn.compiler.spiking.counting.LayerCounts`,
per sample) on a chip (:class:`.model.EnergyModel`), by term and part, in pJ.

With ``w, s, e, a`` the weight, state, event and activation widths in bytes and ``ε(M)``
the energy per byte of a memory of ``M`` bytes:

* compute: ``SOPs·E_add`` (or ``E_sop``) + ``MACs_enc·(E_mult + E_add)`` + ``U_active·E_update
  + U_idle·E_idle + spikes_out·E_fire`` + ``leak_multiplies·E_leak`` + ``compares·E_cmp``;
* memory: weights ``(SOPs·w + U_active·s [bias] + MACs_enc·w)·ε(W·w + B·s)``, membrane
  ``2·s·(SOPs [accumulate in memory] + state_updates)·ε(N·s)``, events
  ``e·(events_in + spikes_out)·ε(Q·e)``, encoder input ``reads_enc·a·ε(X·a)``;
* addressing: ``SOPs·E_addr_add + conv_events_in·2·(E_addr_mult + E_addr_add)`` (locating
  a conv event's first target) + the encoder's dense address adds;
* routing: ``spikes_out·(E_spike + hops·E_hop)``.

``W, B, N, Q, X``: the layer's stored weights, biases, neurons, the event-queue entries and
the encoder's input size. The encoder terms repeat ``encoder_passes`` times. A chip with
``snn_memory`` false (a measured ``E_sop``) has no SNN memory or addressing terms.
"""

from __future__ import annotations

import math
from dataclasses import replace

from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.counting import LayerCounts
from pseudosnn.simulator.energy.model import EnergyModel

TERMS = ("compute", "memory", "addressing", "routing")
PRICES = ("sop", "event", "conv_event", "spike", "update")


def layer_energy(m: EnergyModel, c: LayerCounts, mean_hops: float = 0.0
                 ) -> dict[str, dict[str, float]]:
    """``{term: {part: pJ}}`` of one layer (see the module docstring)."""
    return {"compute": _compute(m, c), "memory": _memory(m, c),
            "addressing": _addressing(m, c),
            "routing": {"spikes": c.spikes_out * (m.spike_pj + mean_hops * m.hop_pj)}}


def total(energy: dict[str, dict[str, float]]) -> float:
    return sum(sum(parts.values()) for parts in energy.values())


def by_term(energy: dict[str, dict[str, float]]) -> dict[str, float]:
    return {term: sum(parts.values()) for term, parts in energy.items()}


def _encoder(c: LayerCounts, key: str) -> float:
    """A count summed over the layer's encoders and their passes."""
    per = [counting.layer_ops(enc) | counting.ann_accesses(enc) for enc in c.encoders]
    return c.encoder_passes * sum(p[key] for p in per)


def _compute(m: EnergyModel, c: LayerCounts) -> dict[str, float]:
    sop = m.add_pj if m.sop_pj is None else m.sop_pj
    return {"synaptic": c.sops * sop, "encoder": _encoder(c, "macs") * m.mac_pj,
            "neuron": c.active_updates * m.update_pj + c.idle_updates * m.idle_update_pj
            + c.spikes_out * m.fire_pj,
            "leak": c.leak_multiplies * m.leak_pj, "pooling": c.compares * m.compare_pj}


def _memory(m: EnergyModel, c: LayerCounts) -> dict[str, float]:
    if not m.snn_memory:
        return {}
    w, s, e, a = (b / 8 for b in (m.weight_bits, m.state_bits, m.event_bits,
                                  m.activation_bits))
    price = m.memory_pj_per_byte
    bias_reads = c.active_updates if c.biases else 0.0
    weight_bytes = c.sops * w + bias_reads * s + _encoder(c, "weight_reads") * w
    membrane = (c.sops if m.accumulate_in_memory else 0.0) + c.state_updates
    enc_input = sum(c.encoder_passes * counting.ann_accesses(enc)["input_reads"] * a
                    * price(math.prod(enc.in_shape) * a) for enc in c.encoders)
    return {"weights": weight_bytes * price(c.weights * w + c.biases * s),
            "membrane": 2 * s * membrane * price(c.neurons * s),
            "events": e * (c.events_in + c.spikes_out) * price(m.queue_entries * e),
            "encoder_input": enc_input}


def _addressing(m: EnergyModel, c: LayerCounts) -> dict[str, float]:
    if not m.snn_memory:
        return {}
    return {"synaptic": c.sops * m.address_add_pj
            + c.conv_events_in * 2 * (m.address_mult_pj + m.address_add_pj),
            "encoder": c.encoder_passes * sum(counting.address_adds(enc) for enc in c.encoders)
            * m.address_add_pj}


def unit_prices(m: EnergyModel, c: LayerCounts, mean_hops: float = 0.0) -> dict[str, float]:
    """pJ of one SOP into the layer, one event delivered to it (``event``: dense,
    ``conv_event``: through a conv), one spike it emits, one active neuron update, with
    the layer's memory sizes: the energy is linear in these counts
    (``E = Σ count·price`` + encoder, idle, leak and compare terms)."""
    zero = replace(c, sops=0.0, events_in=0.0, conv_events_in=0.0, encoders=(),
                   active_updates=0.0, idle_updates=0.0, state_updates=0.0, spikes_out=0.0,
                   compares=0.0, leak_multiplies=0.0)

    def price(**counts) -> float:
        return total(layer_energy(m, replace(zero, **counts), mean_hops))

    return {"sop": price(sops=1.0), "event": price(events_in=1.0),
            "conv_event": price(events_in=1.0, conv_events_in=1.0),
            "spike": price(spikes_out=1.0),
            "update": price(active_updates=1.0, state_updates=1.0)}
