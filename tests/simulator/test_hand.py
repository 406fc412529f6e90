"""Networks small enough to work out by hand: spikes, SOPs with conv borders, latency,
energy; and a fixed-point case where the 24-bit saturation decides a spike."""

import numpy as np
import pytest
from pseudosnn.compiler.spiking.counting import Layer
from pseudosnn.compiler.spiking.graph import (
    InputNode,
    Population,
    Projection,
    Readout,
    SpikingGraph,
)
from pseudosnn.compiler.spiking.schedule import schedule
from pseudosnn.simulator.energy import get_model
from pseudosnn.simulator.engine import simulate
from pseudosnn.simulator.metrics.report import build_report
from pseudosnn.simulator.metrics.tally import Tally


def two_layer() -> SpikingGraph:
    """input (1,3,3) -[1x1 conv, w=1]-> A (1,3,3), T=4 -[3x3 conv, pad 1, w=1/16]->
    B (1,3,3), T=2 -[dense]-> readout (2,). theta = 1, v0 = 1/2, rate coupling."""
    A = Population("A", (1, 3, 3), np.int64(4), 1.0, np.zeros((1, 1, 1)), 0.5)
    B = Population("B", (1, 3, 3), np.int64(2), 1.0, np.zeros((1, 1, 1)), 0.5)
    w_out = np.zeros((2, 9))
    w_out[0] = 0.5
    w_out[1, 0] = 0.5
    g = SpikingGraph(
        InputNode((1, 3, 3)), (A, B), Readout("out", (2,), np.array([0.25, -0.25])),
        (Projection("enc", "input", "A", "conv", np.ones((1, 1, 1, 1)), delay=0),
         Projection("AB", "A", "B", "conv", np.full((1, 1, 3, 3), 1 / 16), padding=(1, 1)),
         Projection("Bout", "B", "out", "dense", w_out)),
        meta={"trained_layers": [  # the same three layers, as the compiler records them
            Layer("enc", "conv", (1, 3, 3), (1, 3, 3), reads=("input",), feeds="A").as_dict(),
            Layer("AB", "conv", (1, 3, 3), (1, 3, 3), kernel=(3, 3), padding=(1, 1),
                  reads=("A",), feeds="B").as_dict(),
            Layer("Bout", "linear", (9,), (2,), reads=("B",)).as_dict()]})
    g = schedule(g)
    g.validate()
    return g


X = np.array([[[[1.0, 0.5, 0.0], [0.25, 0.75, 1.0], [0.0, 0.0, 0.1]]]])


def test_two_layer_network_by_hand():
    g = two_layer()
    res = simulate(g, X, record_spikes=True)
    # A: n = clamp(floor(4c + 1/2), 0, 4); c = x.
    n_A = np.array([[4, 2, 0], [1, 3, 4], [0, 0, 0]])
    assert np.array_equal(res.counts["A"][0, 0], n_A)
    # A fires from step 0 (c=1: every step; 0.5: steps 0,2; 0.25: step 1; 0.75: 0,1,3)
    assert res.spikes_per_step["A"].tolist() == [4, 4, 3, 3, 0, 0, 0]
    assert np.nonzero(res.spikes["A"][0, :, 0, 1, 0])[0].tolist() == [1]  # c = 0.25
    # B: c = (3x3 neighbourhood sum of n_A)/16 = [[10,14,9],[10,14,9],[4,8,7]]/16,
    # n = floor(2c + 1/2); window steps 4, 5 (A's last events arrive at 3 + 1 = 4).
    assert g.population("B").start == 4
    n_B = np.array([[1, 2, 1], [1, 2, 1], [1, 1, 1]])
    assert np.array_equal(res.counts["B"][0, 0], n_B)
    assert res.spikes_per_step["B"].tolist() == [0, 0, 0, 0, 7, 4, 0]
    # readout: 0.5 * 11 + 0.25 and 0.5 * n_B[0,0] - 0.25; final at 5 + 1 = 6
    np.testing.assert_allclose(res.output, [[5.75, 0.25]])
    assert res.steps == g.latency_steps == 7
    assert g.pipeline_interval == 4
    # SOPs: 3x3 pad-1 fan-out on 3x3 is [[4,6,4],[6,9,6],[4,6,4]] (borders!)
    assert res.sops["AB"] == 4 * 4 + 2 * 6 + 1 * 6 + 3 * 9 + 4 * 6 == 85
    assert res.sops["Bout"] == 11 * 2
    assert res.macs == 9  # 1x1 conv, 9 structural synapses
    assert res.neuron_updates == {"A": 36, "B": 18}

    tally = Tally().add(res, np.array([0]))
    rep = build_report(g, tally, get_model("compute-only"), time_per_step_us=2.0)
    assert rep["latency_steps"] == 7 and rep["latency_us"] == 14.0
    assert rep["throughput_samples_per_s"] == pytest.approx(1e6 / (4 * 2.0))
    assert rep["accuracy"] == 1.0
    assert rep["totals"]["energy_pj_per_sample"] == pytest.approx(107 * 0.9 + 9 * 4.6)
    layers = {r["layer"]: r for r in rep["layers"]}
    assert layers["A"]["energy_pj"] == pytest.approx(9 * 4.6)
    assert layers["B"]["energy_pj"] == pytest.approx(85 * 0.9)
    assert layers["out"]["energy_pj"] == pytest.approx(22 * 0.9)
    assert layers["A"]["firing_rate"] == pytest.approx(14 / 36)
    assert layers["A"]["sops_out_per_sample"] == 85 and layers["B"]["sops_out_per_sample"] == 22
    # ANN: 9 + 49 (3x3 conv with borders: 3*3 + 2*3*2 ... = 49 structural taps) + 18 MACs
    assert rep["ann"]["macs_per_sample"] == 76 and rep["ann"]["adds_per_sample"] == 0
    full = rep["ann"]["variants"]["full"]
    assert full["energy_pj_per_sample"] == pytest.approx(76 * 4.6)
    assert full["snn_over_ann"] == pytest.approx((107 * 0.9 + 9 * 4.6) / (76 * 4.6))


def test_two_layer_network_memory_aware_energy_by_hand():
    """45 nm: 4-byte words; every memory here is under 8 KB: 10 pJ per 8 B = 1.25 pJ/B."""
    g = two_layer()
    tally = Tally().add(simulate(g, X), np.array([0]))
    rep = build_report(g, tally, get_model("45nm"), time_per_step_us=1.0)
    B = {r["layer"]: r for r in rep["layers"]}["B"]
    # B: 85 SOPs from 14 A-events (conv), 9 neurons x T=2 active updates, 11 spikes out
    assert (B["sops_per_sample"], B["events_in_per_sample"], B["spikes_per_sample"]) == \
        (85, 14, 11)
    e = B["energy_parts_pj"]
    assert e["compute"]["synaptic"] == pytest.approx(85 * 0.9)
    assert e["compute"]["neuron"] == pytest.approx(18 * (0.9 + 0.9) + 11 * 0.9)
    assert e["memory"]["weights"] == pytest.approx((85 * 4 + 18 * 4) * 1.25)  # + bias reads
    assert e["memory"]["membrane"] == pytest.approx(2 * 4 * (85 + 18) * 1.25)
    assert e["memory"]["events"] == pytest.approx(4 * (14 + 11) * 1.25)
    assert e["addressing"]["synaptic"] == pytest.approx(85 * 0.1 + 14 * 2 * (3.1 + 0.1))
    assert B["energy_pj"] == pytest.approx(1886.9)
    assert B["prices_pj"]["sop"] == pytest.approx(0.9 + 4 * 1.25 + 8 * 1.25 + 0.1)
    # its ANN counterpart, the trained 3x3 conv: quantised, 3-bit inputs (T_A = 4), 2-bit
    # outputs (T_B = 2), 32-bit weights; multiply 3.7 * 3 * 32 / 32^2, accumulate 0.9
    mac = 3.7 * 3 * 32 / 1024 + 0.9
    ann = 49 * mac + 9 * 0.9 + (49 * 3 / 8 * 1.25 + (49 + 9) * 4 * 1.25 + 9 * 2 / 8 * 1.25) \
        + (9 + 9 + 9) * 0.1
    assert B["ann_pj"]["quantised"] == pytest.approx(ann)
    variable = 85 * B["prices_pj"]["sop"] + 14 * (4 * 1.25 + 2 * 3.2)  # scales with events
    assert B["break_even"]["quantised"] == pytest.approx(
        (ann - (1886.9 - variable)) * 85 / (variable * 49))
    assert B["spikes_per_synapse"] == pytest.approx(85 / 49)
    assert rep["totals"]["energy_pj_per_sample"] == pytest.approx(
        sum(r["energy_pj"] for r in rep["layers"]))


def test_two_layer_network_on_loihi_by_hand():
    g = two_layer()
    tally = Tally().add(simulate(g, X), np.array([0]))
    loihi = build_report(g, tally, get_model("loihi"), time_per_step_us=1.0)
    e = loihi["totals"]["energy_parts_pj"]
    assert e["compute"]["synaptic"] == pytest.approx(107 * 23.6)
    assert e["compute"]["encoder"] == pytest.approx(9 * 4.6)
    # active neuron-steps 36 + 18; inactive (9*7 - 36) + (9*7 - 18) = 72
    assert e["compute"]["neuron"] == pytest.approx(54 * 81 + 72 * 52)
    assert e["routing"]["spikes"] == pytest.approx(25 * 1.7)
    assert loihi["totals"]["energy_by_term_pj"]["memory"] == 0  # included in the per-op figures
    assert loihi["totals"]["energy_pj_per_sample"] == pytest.approx(10727.1)


def saturating_graph() -> SpikingGraph:
    """Fixed point: 200 A-neurons fire every step into B with weight -128 << 7, 760 fire
    only at their step 3 with +127 << 7. B (stream, start 1) goes below -2**23 at step 3;
    saturated it reaches 689152 >= 256 at step 4 and fires; unsaturated it would not."""
    n_neg, n_pos = 200, 760
    w_enc = np.zeros((n_neg + n_pos, 2))
    w_enc[:n_neg, 0] = 1.0
    w_enc[n_neg:, 1] = 1.0
    A = Population("A", (n_neg + n_pos,), np.int64(4), 256.0, np.zeros(1, np.int64), 128.0,
                   units_per_float=256.0)
    B = Population("B", (1,), np.int64(4), 256.0, np.zeros(1, np.int64), 128.0,
                   coupling="stream", units_per_float=256.0)
    w = np.concatenate([np.full(n_neg, -128), np.full(n_pos, 127)])[None].astype(np.int64)
    g = SpikingGraph(
        InputNode((2,)), (A, B), Readout("out", (1,), np.zeros(1, np.int64), units_per_float=1.0),
        (Projection("enc", "input", "A", "dense", w_enc, delay=0),
         Projection("AB", "A", "B", "dense", w, weight_exp=7),
         Projection("Bout", "B", "out", "dense", np.ones((1, 1), np.int64))),
        fixed_point=True)
    g = schedule(g)
    g.validate()
    return g


def test_fixed_point_saturation_decides_a_spike():
    g = saturating_graph()
    # encoder currents: 1.0 * 256 = 256 (fires every step), 0.125 * 256 = 32
    # (v: 160, 192, 224, 256 -> fires at its step 3 only)
    res = simulate(g, np.array([[1.0, 0.125]]), record_spikes=True)
    assert res.spikes_per_step["A"].tolist() == [200, 200, 200, 960, 0, 0]
    assert g.population("B").start == 1
    assert res.spikes["B"][0, :, 0].tolist() == [False, False, False, False, True, False]
    assert res.output.tolist() == [[1.0]]


def test_energy_plots_and_csv_of_the_hand_network(tmp_path):
    from pseudosnn.simulator.metrics.report import format_table, to_csv
    from pseudosnn.simulator.plots import plot_break_even, plot_energy

    g = two_layer()
    rep = build_report(g, Tally().add(simulate(g, X), np.array([0])), get_model("45nm"), 1.0)
    for plot in (plot_energy, plot_break_even):
        path = plot(rep, tmp_path / f"{plot.__name__}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = to_csv(rep).splitlines()
    head = rows[0].split(",")
    b = dict(zip(head, rows[2].split(","), strict=True))
    assert float(b["energy_pj"]) == pytest.approx(1886.9)
    assert float(b["break_even_quantised"]) == pytest.approx(
        rep["layers"][1]["break_even"]["quantised"])
    text = format_table(rep)
    assert "quantised ANN" in text and "SNN does not win" in text and "memory" in text
