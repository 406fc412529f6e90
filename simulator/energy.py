"""Energy models: every hardware constant of the toolchain, named, with its source.

Energy of one deployed run (DESIGN.md §2)::

    E = E_sop * SOPs + E_mac * MACs_encoder
        + E_update_active * active_updates + E_update_inactive * inactive_updates
        + (E_spike + hops * E_hop) * spikes

An *active* neuron update is a neuron-step inside the neuron's window; an *inactive* one
is a neuron-step of the same sample outside it (the population exists for the whole
latency). The ANN energy of the trained network is ``E_mac * MACs + E_sop * adds``
(counts from ``compiler.spiking.counting``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pseudosnn.errors import PseudoSNNError

# --- Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm, 0.9 V) ------------------
HOROWITZ_2014 = "M. Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014"
FP32_ADD_PJ = 0.9
FP32_MULT_PJ = 3.7
FP32_MAC_PJ = FP32_MULT_PJ + FP32_ADD_PJ  # 4.6 pJ, the SNN-paper convention
INT32_ADD_PJ = 0.1
INT32_MULT_PJ = 3.1
INT32_MAC_PJ = INT32_MULT_PJ + INT32_ADD_PJ  # 3.2 pJ
INT8_ADD_PJ = 0.03
INT8_MULT_PJ = 0.2
INT8_MAC_PJ = INT8_MULT_PJ + INT8_ADD_PJ  # 0.23 pJ

# --- Davies et al., "Loihi: a neuromorphic manycore processor with on-chip learning",
# IEEE Micro 38(1), 2018, Table 2 (pre-silicon measurements) ------------------------------
DAVIES_2018 = "M. Davies et al., Loihi, IEEE Micro 38(1) 2018, Table 2"
LOIHI_SYNAPTIC_OP_PJ = 23.6  # synaptic spike operation (minimum)
LOIHI_NEURON_UPDATE_ACTIVE_PJ = 81.0
LOIHI_NEURON_UPDATE_INACTIVE_PJ = 52.0
LOIHI_SPIKE_WITHIN_TILE_PJ = 1.7
LOIHI_HOP_EAST_WEST_PJ = 3.0
LOIHI_HOP_NORTH_SOUTH_PJ = 4.0

DEFAULT_TIME_PER_STEP_US = 1.0
"""Wall time of one global step. Not a hardware measurement: a unit so that latencies
read in microseconds per step; pass the real value (``--time-per-step-us``) for a chip."""


class UnknownEnergyModel(PseudoSNNError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in picojoules."""

    name: str
    sop_pj: float
    mac_pj: float
    source: str
    neuron_active_pj: float = 0.0
    neuron_inactive_pj: float = 0.0
    spike_pj: float = 0.0
    hop_pj: float = 0.0
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, EnergyModel] = {
    m.name: m for m in (
        EnergyModel("45nm-fp32", FP32_ADD_PJ, FP32_MAC_PJ, HOROWITZ_2014,
                    note="SNN-paper convention: SOP = fp32 add, MAC = fp32 mult + add"),
        EnergyModel("45nm-int32", INT32_ADD_PJ, INT32_MAC_PJ, HOROWITZ_2014),
        EnergyModel("45nm-int8", INT8_ADD_PJ, INT8_MAC_PJ, HOROWITZ_2014),
        EnergyModel(
            "loihi", LOIHI_SYNAPTIC_OP_PJ, FP32_MAC_PJ, f"{DAVIES_2018}; MAC: {HOROWITZ_2014}",
            neuron_active_pj=LOIHI_NEURON_UPDATE_ACTIVE_PJ,
            neuron_inactive_pj=LOIHI_NEURON_UPDATE_INACTIVE_PJ,
            spike_pj=LOIHI_SPIKE_WITHIN_TILE_PJ,
            hop_pj=(LOIHI_HOP_EAST_WEST_PJ + LOIHI_HOP_NORTH_SOUTH_PJ) / 2,
            note="encoder MACs run off-chip (45 nm fp32 MAC); hop energy is the E-W/N-S mean "
                 "and counts only with a given mean hop count (placement unknown: default 0)"),
    )
}
DEFAULT_MODEL = "45nm-fp32"


def get_model(name: str) -> EnergyModel:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownEnergyModel(
            f"unknown energy model {name!r}; known models: {', '.join(sorted(PRESETS))}"
        ) from None


CATEGORIES = ("sop", "encoder_mac", "neuron_update", "routing")


def layer_energy_pj(
    model: EnergyModel, sops: int, macs: int, active_updates: int, inactive_updates: int,
    spikes: int, mean_hops: float = 0.0,
) -> dict[str, float]:
    """Energy of one layer by category (pJ)."""
    return {
        "sop": model.sop_pj * sops,
        "encoder_mac": model.mac_pj * macs,
        "neuron_update": model.neuron_active_pj * active_updates
        + model.neuron_inactive_pj * inactive_updates,
        "routing": (model.spike_pj + mean_hops * model.hop_pj) * spikes,
    }


def ann_energy_pj(model: EnergyModel, macs: int, adds: int = 0) -> float:
    """The trained network run as an ANN: ``E_mac`` per MAC, ``E_sop`` (an add) per add
    (``compiler.spiking.counting.ann_ops``)."""
    return model.mac_pj * macs + model.sop_pj * adds
