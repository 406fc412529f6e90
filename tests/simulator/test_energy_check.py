"""The energy check's arithmetic on a network small enough to work out by hand."""

import math

import numpy as np
import pytest
from pseudosnn.compiler.spiking.graph import (
    InputNode,
    Population,
    Projection,
    Readout,
    SpikingGraph,
)
from pseudosnn.compiler.spiking.schedule import schedule
from pseudosnn.simulator.energy import get_model
from pseudosnn.simulator.energy_check import (
    compare,
    deployed_by_source,
    format_table,
    relative_error,
)
from pseudosnn.simulator.engine import simulate
from pseudosnn.simulator.metrics.report import build_report
from pseudosnn.simulator.metrics.tally import Tally


def hand_network() -> SpikingGraph:
    """input (2) -> A (2 neurons, T=2) -> B (3 neurons, T=4) -> readout (2).

    x = [1, 0.5]; encoder W0 = diag(0.8, 0.5) -> c_A = [0.8, 0.25]
    n_A = floor(2c + 1/2) = [2, 1]                       (v0 = 1/2, theta = 1)
    A->B: W = [[1,0],[0,1],[1,1]] / T_A  -> c_B = [1, 0.5, 1.5]
    n_B = clamp(floor(4c + 1/2), 0, 4) = [4, 2, 4]
    SOPs A->B = (2+1) * 3 targets = 9; SOPs B->readout = (4+2+4) * 2 targets = 20
    """
    a = Population("A", (2,), np.int64(2), 1.0, np.zeros(2), 0.5)
    b = Population("B", (3,), np.int64(4), 1.0, np.zeros(3), 0.5)
    projs = (
        Projection("in->A", "input", "A", "dense", np.diag([0.8, 0.5]), delay=0),
        Projection("A->B", "A", "B", "dense", np.array([[1, 0], [0, 1], [1, 1]]) / 2.0),
        Projection("B->out", "B", "out", "dense", np.ones((2, 3)) / 4.0),
    )
    return schedule(SpikingGraph(InputNode((2,)), (a, b), Readout("out", (2,), np.zeros(2)),
                                 projs))


def deployed_report(model: str = "compute-only"):
    g = hand_network()
    res = simulate(g, np.array([[1.0, 0.5]]))
    assert res.counts["A"].tolist() == [[2, 1]]
    assert res.counts["B"].tolist() == [[4, 2, 4]]
    assert res.sops == {"A->B": 9, "B->out": 20}
    tally = Tally()
    tally.add(res)
    return build_report(g, tally, get_model(model), time_per_step_us=1.0)


def test_compare_against_hand_computed_errors_and_energy():
    rep = deployed_report()
    estimates = {  # FLOPs of what each population drives: A: 2x3 dense, B: 3x2 dense
        "A": {"flops": 6, "timesteps": 2.0, "expected_spikes": 3.2, "expected_sops": 9.5,
              "expected_energy_pj": 9.5 * 0.9},
        "B": {"flops": 6, "timesteps": 4.0, "expected_spikes": 10.2, "expected_sops": 20.4,
              "expected_energy_pj": 20.4 * 0.9},
    }
    check = compare(estimates, rep, tolerance=0.05)
    a, b = check["layers"]
    assert (a["deployed_sops"], a["paper_sops"], a["spike_sops"]) == (9, 12, 9.5)
    assert a["paper_rel_err"] == pytest.approx(3 / 9)
    assert a["spike_rel_err"] == pytest.approx(0.5 / 9) and a["spike_flag"]  # 5.6% > 5%
    assert (b["deployed_sops"], b["paper_sops"]) == (20, 24)
    assert b["spike_rel_err"] == pytest.approx(0.02) and not b["spike_flag"]
    t = check["totals"]
    assert t["deployed_sops"] == 29 and t["paper_sops"] == 36
    assert t["paper_rel_err"] == pytest.approx(7 / 29)
    assert t["spike_rel_err"] == pytest.approx(0.9 / 29) and not t["spike_flag"]
    # compute-only: 0.9 pJ per SOP, nothing per spike or update; the encoder's 2x2 = 4
    # MACs at 4.6 pJ are in every total
    assert (a["deployed_energy_pj"], b["deployed_energy_pj"]) == pytest.approx((8.1, 18.0))
    assert a["spike_energy_rel_err"] == pytest.approx(0.5 / 9) and a["spike_energy_flag"]
    assert t["encoder_macs"] == 4
    assert t["deployed_energy_pj"] == pytest.approx(0.9 * 29 + 4.6 * 4)
    assert t["spike_energy_pj"] == pytest.approx(0.9 * 29.9 + 4.6 * 4)
    assert check["flagged"] == ["A", "B"]  # A: both estimates; B: the paper's (+20%)
    assert "total" in format_table(check) and "energy per sample" in format_table(check)


def test_deployed_energy_by_source_adds_up_on_the_memory_aware_model():
    """Per source: its SOPs and events priced at their targets, its spikes and updates at
    itself; with the encoder and idle updates that is the report's total."""
    rep = deployed_report("45nm")
    deployed = deployed_by_source(rep)
    layers = {r["layer"]: r for r in rep["layers"]}
    pA, pB, pout = (layers[k]["prices_pj"] for k in ("A", "B", "out"))
    assert deployed["A"]["energy_pj"] == pytest.approx(
        9 * pB["sop"] + 3 * (pB["event"] + pA["spike"]) + 4 * pA["update"])
    assert deployed["B"]["energy_pj"] == pytest.approx(
        20 * pout["sop"] + 10 * (pout["event"] + pB["spike"]) + 12 * pB["update"])
    encoder = layers["A"]["energy_parts_pj"]
    fixed = encoder["compute"]["encoder"] + encoder["memory"]["encoder_input"] \
        + encoder["addressing"]["encoder"] + 4 * 4 * 1.25  # encoder weight reads
    assert deployed["A"]["energy_pj"] + deployed["B"]["energy_pj"] + fixed == pytest.approx(
        rep["totals"]["energy_pj_per_sample"])


def test_mismatched_layers_are_an_error():
    rep = deployed_report()
    with pytest.raises(ValueError, match="differ"):
        compare({"A": {"flops": 6, "timesteps": 2.0, "expected_spikes": 0.0,
                       "expected_sops": 0.0}}, rep)


def test_relative_error_edge_cases():
    assert relative_error(0.0, 0.0) == 0.0
    assert math.isinf(relative_error(1.0, 0.0))
    assert relative_error(11.0, 10.0) == pytest.approx(0.1)
