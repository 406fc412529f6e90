"""Which populations run on Lava's own ``LIF`` process, and with which parameters
(lava-free: the Lava venv builds with it, the main side reports it).

Lava's ``LIFReset`` (lava-nc 0.10.0, ``lava/proc/lif``) steps, in float,
``u = u*(1-du) + a_in;  v = v*(1-dv) + u + bias_mant;  s = v > vth;  v[s] = 0`` and, in
fixed point (``PyLifResetModelBitAcc``), Loihi's arithmetic with ``du + 1`` and ``dv`` as
12-bit decays, ``a_in << 6``, ``vth << 6``; it zeroes ``u`` and ``v`` at the steps with
``time_step % reset_interval == reset_offset`` (before integrating). That is the
contract's :func:`~pseudosnn.compiler.spiking.semantics.lif_step`, bit for bit, for a
population with

* hard reset to 0 and ``v0 = 0`` (Lava resets to 0, and to 0 at every sample's start:
  ``reset_interval = period``, ``reset_offset = 1``, local step 0);
* ``du = 1`` (no current state) and, in fixed point, ``dv < 1`` (12 bits hold 0..4095);
* ``>`` in fixed point (the quantiser gives every LIF-arithmetic population ``>``); in
  float ``>=`` is ``v > vth`` with ``vth`` the next float below ``θ``, exactly;
* its bias fed as an input current during the window (``bias_mant = 0``), with the
  encoder's current, by one of our ``CurrentSource`` processes;
* one ``T`` and input only inside its window: stream coupling, or rate coupling driven by
  the encoder alone (a constant current from step 0).

Outside the window it then computes exactly what the contract's frozen neuron shows:
before it ``u = v = 0`` and no input, so nothing moves; after it no input arrives, so
``u = 0`` and ``|v|`` only shrinks under the decay from ``v <= vth``: no spike. Every other
population runs on our own process (``PseudoSNPopulation``), which steps the contract's
function itself.
"""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler.spiking.graph import Population, SpikingGraph
from pseudosnn.compiler.spiking.semantics import DECAY_UNITY, decay_int

LAVA_VTH_MAX = 2 ** 17 - 1
"""lava ``PyLifModelBitAcc.vth``: unsigned 17-bit."""


def lava_lif_refusal(graph: SpikingGraph, pop: Population) -> str | None:
    """Why ``pop`` cannot run on Lava's own LIF (None: it can; module docstring)."""
    if pop.reset != "hard" or pop.v_reset != 0:
        return "Lava's LIF resets to 0 (hard reset)"
    if pop.v0 != 0:
        return "Lava's LIF starts from v = 0"
    if pop.du != 1:
        return "a current with state (du < 1) keeps driving v after the window"
    if np.unique(pop.timesteps).size != 1:
        return "Lava's LIF has no per-neuron windows (one T per population)"
    if pop.coupling == "rate" and any(not pr.is_encoder for pr in graph.incoming(pop.name)):
        return "rate coupling integrates the accumulated current only in its window"
    if graph.fixed_point:
        if pop.fire != ">":
            return "Loihi's LIF fires on v > θ"
        if decay_int(pop.dv) >= DECAY_UNITY:
            return "Loihi's 12-bit dv cannot be 1"
        if not 0 <= int(pop.threshold) <= LAVA_VTH_MAX:
            return "the threshold exceeds Loihi's 17-bit vth"
    elif not pop.threshold > 0:
        return "Lava's LIF needs a positive threshold"
    return None


def lava_lif_parameters(pop: Population, fixed: bool) -> dict:
    """``du``, ``dv``, ``vth`` of Lava's LIF computing ``pop`` (float: decays as given,
    ``vth`` the largest float below θ for ``>=``; fixed: Lava's 12-bit ``du``, ``dv``
    with its ``du + 1`` offset, ``vth = θ``)."""
    if fixed:
        return {"du": decay_int(pop.du) - 1, "dv": decay_int(pop.dv), "vth": int(pop.threshold)}
    theta = float(pop.threshold)
    vth = np.nextafter(theta, -np.inf) if pop.fire == ">=" else theta
    return {"du": float(pop.du), "dv": float(pop.dv), "vth": float(vth)}
