"""The energy model's parts: memory pricing, validation, presets, chip files, linearity
of a layer's energy in its counts, the quantised ANN's widths, break-even."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from pseudosnn.compiler.spiking.counting import Layer, LayerCounts
from pseudosnn.simulator.energy import (
    PRESETS,
    ChipError,
    EnergyModel,
    EnergyModelError,
    ann,
    get_model,
    load_chip,
    resolve,
    snn,
)
from pseudosnn.simulator.energy import constants as k

from pseudosnn.errors import PseudoSNNError


def test_memory_price_smallest_and_interpolated():
    m = get_model("45nm")  # Horowitz: 10 / 20 / 100 pJ per 64-bit access, DRAM 1.3 nJ
    assert m.memory_pj_per_byte(100) == 10 / 8
    assert m.memory_pj_per_byte(8 * 1024) == 10 / 8
    assert m.memory_pj_per_byte(8 * 1024 + 1) == 20 / 8
    assert m.memory_pj_per_byte(2 * 1024 * 1024) == 1300 / 8
    assert m.memory_pj_per_byte(1e15) == 1300 / 8  # the largest memory holds anything
    lem = get_model("lemaire")  # SpikingJelly's breakpoints, per byte of a 32-bit word
    assert lem.memory_pj_per_byte(0) == 0.0
    assert lem.memory_pj_per_byte(4 * 1024) == pytest.approx(2.5 / 2)
    assert lem.memory_pj_per_byte(20 * 1024) == pytest.approx(2.5 + 2.5 / 2)
    assert lem.memory_pj_per_byte(1 << 30) == 25.0  # flat beyond 1 MB
    assert get_model("compute-only").memory_pj_per_byte(1 << 30) == 0.0


@pytest.mark.parametrize("field, value", [
    ("add_pj", -0.1), ("mult_pj", math.nan), ("update_pj", math.inf), ("leak_pj", True),
    ("sop_pj", -1.0), ("weight_bits", 0), ("queue_entries", 2.5),
    ("memory_mode", "lru"), ("memory", ((10.0, 1.0), (5.0, 2.0))),
    ("memory", ((10.0, -1.0),)),
])
def test_bad_fields_are_errors_naming_the_field(field, value):
    with pytest.raises(EnergyModelError, match=field.split("_")[0]) as e:
        replace(get_model("45nm"), **{field: value})
    assert isinstance(e.value, PseudoSNNError)


def test_measured_sop_energy_excludes_separate_memory():
    with pytest.raises(EnergyModelError, match="snn_memory"):
        replace(get_model("45nm"), sop_pj=23.6)


def test_presets_name_their_sources_and_unknown_names_list_them():
    assert set(PRESETS) == {"compute-only", "45nm", "lemaire", "loihi"}
    assert all(m.source for m in PRESETS.values())
    assert get_model("loihi").sop_pj == k.LOIHI_SYNAPTIC_OP_PJ == 23.6
    assert (get_model("loihi").update_pj, get_model("loihi").idle_update_pj) == (81.0, 52.0)
    assert get_model("compute-only").mac_pj == pytest.approx(4.6)
    with pytest.raises(PseudoSNNError, match="known models: 45nm, compute-only, lemaire"):
        get_model("tpu")


def test_chip_file_on_a_base_and_from_scratch(tmp_path):
    p = tmp_path / "edge.yaml"
    p.write_text("base: 45nm\nadd_pj: 1e-2\nweight_bits: 8\nmemory:\n  - [16384, '0.5']\n"
                 "  - [2097152, 6]\n")
    m = load_chip(p)
    assert (m.name, m.add_pj, m.weight_bits, m.mult_pj) == ("edge", 0.01, 8, k.FP32_MULT_PJ)
    assert m.memory == ((16384, 0.5), (2097152, 6))
    assert "edge.yaml" in m.source
    q = tmp_path / "mine.yaml"
    q.write_text("name: mine\nsource: datasheet\nadd_pj: 0.05\nmult_pj: 0.4\n")
    assert resolve("loihi", q) == EnergyModel("mine", "datasheet", 0.05, 0.4)
    assert resolve("loihi") is get_model("loihi")


@pytest.mark.parametrize("text, match", [
    ("base: 45nm\nadd_pjj: 1\n", "unknown field 'add_pjj'; did you mean add_pj"),
    ("base: 45nm\nadd_pj: .nan\n", "'add_pj' must be a finite energy"),
    ("base: 45nm\nhop_pj: -3\n", "'hop_pj' must be a finite energy"),
    ("base: 45nm\nadd_pj: lots\n", "'add_pj' must be a number"),
    ("base: 45nm\nmemory: 3\n", "'memory' must be a list"),
    ("base: 45nm\nmemory: [[1, 1], [1, 2]]\n", "capacities must increase"),
    ("base: tpu\n", "unknown energy model 'tpu'"),
    ("name: x\nadd_pj: 1\n", "missing field.*source, mult_pj"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("add_pj: [1\n", "not valid YAML"),
])
def test_malformed_chip_files_are_one_line_errors(tmp_path, text, match):
    p = tmp_path / "chip.yaml"
    p.write_text(text)
    with pytest.raises(ChipError, match=match) as e:
        load_chip(p)
    assert "\n" not in str(e.value)
    with pytest.raises(ChipError, match="does not exist"):
        load_chip(tmp_path / "none.yaml")


COUNTS = LayerCounts("L", "population", neurons=300, weights=4000, biases=10, synapses=9000,
                     sops=12345.0, events_in=900.0, conv_events_in=600.0,
                     encoders=(Layer("e", "conv", (2, 8, 8), (10, 6, 6), kernel=(3, 3)),),
                     active_updates=1200.0, idle_updates=300.0, state_updates=1200.0,
                     spikes_out=210.0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_layer_energy_is_linear_in_its_counts(name):
    """Energy = Σ count · unit price + the parts with no unit price (encoder, idle updates,
    leak, compares): the decomposition the energy check and the training penalty use."""
    m = get_model(name)
    e = snn.layer_energy(m, COUNTS)
    p = snn.unit_prices(m, COUNTS)
    bare = replace(COUNTS, sops=0.0, events_in=0.0, conv_events_in=0.0, active_updates=0.0,
                   state_updates=0.0, spikes_out=0.0)
    rest = snn.total(snn.layer_energy(m, bare))
    assert snn.total(e) == pytest.approx(
        COUNTS.sops * p["sop"] + 300 * p["event"] + 600 * p["conv_event"]
        + 210 * p["spike"] + 1200 * p["update"] + rest)
    assert all(v >= 0 for parts in e.values() for v in parts.values())


def test_leak_and_compares_are_priced_when_counted():
    """Leaky neurons and max pooling plug in through their counts (0 until they exist)."""
    m = get_model("45nm")
    e = snn.layer_energy(m, replace(COUNTS, leak_multiplies=50.0, compares=70.0))["compute"]
    assert e["leak"] == pytest.approx(50 * k.FP32_MULT_PJ)
    assert e["pooling"] == pytest.approx(70 * k.FP32_ADD_PJ)
    assert snn.layer_energy(m, COUNTS)["compute"]["leak"] == 0.0


@pytest.mark.parametrize("T, bits", [(1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4), (15, 4),
                                     (16, 5)])
def test_quantised_activation_bits(T, bits):
    assert ann.quantised_bits(T) == bits


def test_quantised_ann_widths_follow_the_neurons():
    m = get_model("45nm")
    T = {"a": 3, "b": 15}
    first = Layer("c0", "conv", (1, 8, 8), (4, 8, 8), kernel=(3, 3), padding=(1, 1),
                  reads=("input",), feeds="a")
    mid = Layer("c1", "conv", (4, 8, 8), (4, 8, 8), reads=("a",), feeds="b")
    summed = Layer("add", "add", (4, 8, 8), (4, 8, 8), terms=2, reads=(), feeds="b")
    last = Layer("fc", "linear", (256,), (10,), reads=("b",))
    widths = [(a.in_bits, a.out_bits) for a in
              (ann.arithmetic(m, x, T, quantised=True) for x in (first, mid, summed, last))]
    assert widths == [(32, 2), (2, 4), (32, 4), (4, 32)]  # image, T=3, sums, T=15, logits
    full = ann.arithmetic(m, mid, T, quantised=False)
    assert (full.in_bits, full.mac_pj) == (32, pytest.approx(4.6))
    q = ann.arithmetic(m, mid, T, quantised=True)
    assert q.mac_pj == pytest.approx(3.7 * 2 * 32 / 32 ** 2 + 0.9)
    reuse = sum(ann.layer_energy(m, mid, q, reuse=True).values())
    assert 0 < reuse < sum(ann.layer_energy(m, mid, q).values())


def test_break_even():
    # fixed 100 pJ, 400 pJ from 200 SOPs on 1000 synapses: E(ρ) = 100 + ρ·1000·2
    assert ann.break_even(500.0, 300.0, 400.0, 200.0, 1000) == pytest.approx(0.1)
    assert ann.break_even(500.0, 50.0, 400.0, 200.0, 1000) == 0.0  # never wins
    assert ann.break_even(500.0, 300.0, 0.0, 0.0, 1000) is None  # no events in
