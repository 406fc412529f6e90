"""Every hardware number of the toolchain, named, with its source.

Where a value could not be checked against the primary publication, its comment says so
and names what it was checked against instead.
"""

from __future__ import annotations

# --- Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014 ----
# 45 nm, 0.9 V. The arithmetic rows are the ones the SNN literature quotes (and the values
# SpikingJelly 2.0.0's SimpleEnergyCostConfig and the authors' code of Lemaire et al.
# (qualia-plugin-snn, EnergyEstimationMetric) encode); the paper is not open to us here.
HOROWITZ_2014 = "M. Horowitz, Computing's energy problem, ISSCC 2014 (45 nm, 0.9 V)"
FP32_ADD_PJ = 0.9
FP32_MULT_PJ = 3.7  # an fp32 MAC: 3.7 + 0.9 = 4.6 pJ, the SNN papers' "E_MAC"
INT32_ADD_PJ = 0.1
INT32_MULT_PJ = 3.1
# A multiplier's energy grows with the product of its operand widths: Horowitz's int8
# (0.2 pJ) and int32 (3.1 pJ) multiplies agree, 3.1·(8·8)/(32·32) = 0.19; the quantised
# ANN's multiplies are scaled so (simulator/energy/ann.py).
# SRAM of 8 KB / 32 KB / 1 MB and DRAM, pJ per 64-bit access (DRAM: 1.3-2.6 nJ; the low
# end is taken).
SRAM_8KB_PJ_PER_64BIT = 10.0
SRAM_32KB_PJ_PER_64BIT = 20.0
SRAM_1MB_PJ_PER_64BIT = 100.0
DRAM_PJ_PER_64BIT = 1300.0
KIB = 1024
MIB = 1024 * 1024
DRAM_CAPACITY_BYTES = 64 * 1024 * MIB  # "any size": the largest memory prices all larger data
# A comparator is priced as an adder of the same width (an assumption: Horowitz lists none).
COMPARE_AS_ADD = 1.0

# --- Lemaire et al., "An analytical estimation of spiking neural networks energy
# efficiency", ICONIP 2022 (arXiv 2210.13107) -----------------------------------------------
# Reproduced as SpikingJelly 2.0.0 implements it (op_counter/analytical_energy.py,
# LemaireEnergyCostConfig; cross-checked in tests/simulator/test_energy_spikingjelly.py):
# 32-bit integer arithmetic (Horowitz int32 above), every datum a 32-bit word, memory
# energy per byte interpolated linearly between Horowitz's SRAM points taken per 32-bit
# access (10/20/100 pJ per 4 B) with a (0 B, 0 pJ) anchor and no growth beyond 1 MB, and
# 1000-entry input/output event queues. NOT verified against the paper's text (not open to
# us): the anchor, the clamp and the queue size are SpikingJelly's reading ("follows the
# paper's experiments"); the authors' own code (qualia-plugin-snn) instead prices one
# access at 13.2 + 1.09e-5·entries·bits pJ, a least-squares line through the same points.
LEMAIRE_2022 = ("E. Lemaire et al., An analytical estimation of spiking neural networks "
                "energy efficiency, ICONIP 2022, arXiv 2210.13107, as implemented by "
                "SpikingJelly 2.0.0 (estimate_lemaire_energy)")
LEMAIRE_WORD_BITS = 32
LEMAIRE_QUEUE_ENTRIES = 1000
LEMAIRE_MEMORY_PJ_PER_BYTE = (
    (0.0, 0.0),
    (8 * KIB, SRAM_8KB_PJ_PER_64BIT / 4),
    (32 * KIB, SRAM_32KB_PJ_PER_64BIT / 4),
    (1 * MIB, SRAM_1MB_PJ_PER_64BIT / 4),
)

# --- Davies et al., "Loihi: a neuromorphic manycore processor with on-chip learning",
# IEEE Micro 38(1):82-99, 2018, Table 2 ("pre-silicon SDF and SPICE simulations, consistent
# with early post-silicon characterization"; 14 nm). Not read in the paper itself here:
# checked against two independent transcriptions of Table 2 (a Loihi constants note that
# quotes its rows verbatim, p. 96, and a code comment), which agree on every value below.
DAVIES_2018 = "M. Davies et al., Loihi, IEEE Micro 38(1) 2018, Table 2"
LOIHI_SYNAPTIC_OP_PJ = 23.6  # "energy per synaptic spike op (min)"
LOIHI_NEURON_UPDATE_ACTIVE_PJ = 81.0  # "energy per neuron update (active / inactive)"
LOIHI_NEURON_UPDATE_INACTIVE_PJ = 52.0
LOIHI_SPIKE_WITHIN_TILE_PJ = 1.7  # "within-tile spike energy"
LOIHI_HOP_EAST_WEST_PJ = 3.0  # "energy per tile hop (E-W / N-S)"
LOIHI_HOP_NORTH_SOUTH_PJ = 4.0
LOIHI_WEIGHT_BITS = 8  # 1-9 bit weights (Davies 2018); 8 as the compiler deploys them
LOIHI_STATE_BITS = 24  # 24-bit membrane, as Lava's bit-accurate models

# --- Yan et al., "Reconsidering the energy efficiency of spiking neural networks",
# arXiv 2409.08290: an SNN with T steps is functionally a quantised ANN with
# ceil(log2(T + 1))-bit activations (the fair ANN baseline). ---------------------------------
YAN_2024 = "Z. Yan et al., arXiv 2409.08290 (SNN with T steps ~ ceil(log2(T+1))-bit QNN)"
# --- Dampfhoffer et al., "Are SNNs really more energy-efficient than ANNs?", IEEE TETCI
# 7(3), 2023: the upper bound on ANN efficiency reads every weight and input once. ------------
DAMPFHOFFER_2023 = "M. Dampfhoffer et al., IEEE TETCI 7(3) 2023 (ANN with maximal data reuse)"

DEFAULT_TIME_PER_STEP_US = 1.0
"""Wall time of one global step. Not a hardware measurement: a unit so that latencies
read in microseconds per step; pass the real value (``--time-per-step-us``) for a chip."""
