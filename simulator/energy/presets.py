"""The built-in energy models (constants and their sources: :mod:`.constants`).

* ``compute-only``: the SNN-paper convention ``E_AC·SOPs + E_MAC·MACs`` (fp32 add 0.9 pJ,
  MAC 4.6 pJ); no memory, no neuron updates. Kept for comparison with papers; it is not a
  verdict on energy (memory traffic dominates, see ``45nm``).
* ``45nm`` (default): Horowitz 2014 fp32 arithmetic and memory: every weight read per
  SOP, the membrane read and written per SOP and per neuron update, event queues, conv
  addressing, each memory priced by its size (8 KB / 32 KB / 1 MB SRAM, DRAM beyond).
* ``lemaire``: Lemaire et al. 2022 as SpikingJelly 2.0.0 implements it (32-bit integer
  arithmetic and words, interpolated SRAM energy, 1000-entry event queues).
* ``loihi``: Davies et al. 2018 Table 2 per-operation energies (memory included); the
  encoder runs off-chip and the ANN baselines on the ``45nm`` chip.
"""

from __future__ import annotations

from pseudosnn.simulator.energy import constants as k
from pseudosnn.simulator.energy.model import EnergyModel, EnergyModelError

HOROWITZ_MEMORY_PJ_PER_BYTE = (
    (8 * k.KIB, k.SRAM_8KB_PJ_PER_64BIT / 8),
    (32 * k.KIB, k.SRAM_32KB_PJ_PER_64BIT / 8),
    (1 * k.MIB, k.SRAM_1MB_PJ_PER_64BIT / 8),
    (k.DRAM_CAPACITY_BYTES, k.DRAM_PJ_PER_64BIT / 8),
)


class UnknownEnergyModel(EnergyModelError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


COMPUTE_ONLY = EnergyModel(
    "compute-only", k.HOROWITZ_2014, add_pj=k.FP32_ADD_PJ, mult_pj=k.FP32_MULT_PJ,
    note="the SNN-paper convention (E_AC·SOPs + E_MAC·MACs, fp32): no memory, neuron "
         "updates, addressing or routing; not a verdict on energy")

HOROWITZ_45NM = EnergyModel(
    "45nm", k.HOROWITZ_2014, add_pj=k.FP32_ADD_PJ, mult_pj=k.FP32_MULT_PJ,
    update_pj=k.FP32_ADD_PJ * (1 + k.COMPARE_AS_ADD), fire_pj=k.FP32_ADD_PJ,
    leak_pj=k.FP32_MULT_PJ, compare_pj=k.FP32_ADD_PJ * k.COMPARE_AS_ADD,
    bias_pj=k.FP32_ADD_PJ, address_add_pj=k.INT32_ADD_PJ, address_mult_pj=k.INT32_MULT_PJ,
    memory=HOROWITZ_MEMORY_PJ_PER_BYTE, memory_mode="smallest",
    note="fp32 arithmetic and 32-bit words; SRAM of 8 KB/32 KB/1 MB (10/20/100 pJ per "
         "64-bit access), DRAM (1.3 nJ) for larger data; a neuron update adds its input and "
         "compares with the threshold; no on-chip network energy")

LEMAIRE = EnergyModel(
    "lemaire", k.LEMAIRE_2022, add_pj=k.INT32_ADD_PJ, mult_pj=k.INT32_MULT_PJ,
    update_pj=k.INT32_ADD_PJ, fire_pj=k.INT32_ADD_PJ, leak_pj=k.INT32_MULT_PJ + k.INT32_ADD_PJ,
    compare_pj=k.INT32_ADD_PJ * k.COMPARE_AS_ADD, bias_pj=k.INT32_ADD_PJ,
    address_add_pj=k.INT32_ADD_PJ, address_mult_pj=k.INT32_MULT_PJ,
    memory=k.LEMAIRE_MEMORY_PJ_PER_BYTE, memory_mode="interpolate",
    queue_entries=k.LEMAIRE_QUEUE_ENTRIES, weight_bits=k.LEMAIRE_WORD_BITS,
    state_bits=k.LEMAIRE_WORD_BITS, event_bits=k.LEMAIRE_WORD_BITS,
    activation_bits=k.LEMAIRE_WORD_BITS,
    note="int32 arithmetic, 32-bit words; a neuron update is its bias add and read, a leak "
         "a multiply-add; max-pool compares (not in the paper) priced as adds")

LOIHI = EnergyModel(
    "loihi", f"{k.DAVIES_2018}; encoder and ANN: {k.HOROWITZ_2014}",
    add_pj=k.FP32_ADD_PJ, mult_pj=k.FP32_MULT_PJ, sop_pj=k.LOIHI_SYNAPTIC_OP_PJ,
    update_pj=k.LOIHI_NEURON_UPDATE_ACTIVE_PJ, idle_update_pj=k.LOIHI_NEURON_UPDATE_INACTIVE_PJ,
    spike_pj=k.LOIHI_SPIKE_WITHIN_TILE_PJ,
    hop_pj=(k.LOIHI_HOP_EAST_WEST_PJ + k.LOIHI_HOP_NORTH_SOUTH_PJ) / 2,
    bias_pj=k.FP32_ADD_PJ, address_add_pj=k.INT32_ADD_PJ, address_mult_pj=k.INT32_MULT_PJ,
    memory=HOROWITZ_MEMORY_PJ_PER_BYTE, snn_memory=False,
    weight_bits=k.LOIHI_WEIGHT_BITS, state_bits=k.LOIHI_STATE_BITS,
    note="14 nm pre-silicon per-op energies with memory included; the encoder MACs run "
         "off-chip (45 nm fp32); hop energy is the E-W/N-S mean and counts only with a mean "
         "hop count (placement unknown: default 0); the ANN baselines run on the 45 nm "
         "model, a different process (14 nm vs 45 nm): compare with care")

PRESETS: dict[str, EnergyModel] = {m.name: m for m in (COMPUTE_ONLY, HOROWITZ_45NM, LEMAIRE,
                                                       LOIHI)}
DEFAULT_MODEL = "45nm"


def get_model(name: str) -> EnergyModel:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownEnergyModel(
            f"unknown energy model {name!r}; known models: {', '.join(sorted(PRESETS))} "
            "(or a chip YAML file: --chip PATH)") from None
