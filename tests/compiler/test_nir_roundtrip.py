"""ours -> NIR -> ours is the identity: every deployable zoo family (PseudoSN at every
granularity, the multi-step IF/LIF/ASGL/NSNN families, QCFS, MultiSpike), compiled, exported
with the NIR exporter and read back, gives the same graph (every record and array) and the
same simulation, spike for spike; so do spike max pools, event frames and analog stems
(with a leaky readout too), which plain NIR cannot say: their export is marked lossy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.backends.export_command import plain_loss
from pseudosnn.backends.nir_backend import export, to_bytes
from pseudosnn.compiler.frontend.nir import load_nir
from pseudosnn.compiler.frontend.testing import (
    DEPLOYABLE_FAMILIES,
    DIGITS_ARCHS,
    compiled_family,
)
from pseudosnn.compiler.testing import graph_differences, random_graph
from pseudosnn.simulator.engine import simulate

torch = pytest.importorskip("torch")
pytest.importorskip("nir")

LARGE = [("vgg11", (3, 16, 16)), ("sew_resnet20", (3, 16, 16)), ("resnet19", (3, 8, 8))]


def _round_trip(graph, tmp_path):
    """``graph`` exported, read back and compared: records, arrays, spikes and outputs."""
    path = tmp_path / "m.nir"
    path.write_bytes(to_bytes(export(graph)))
    back = load_nir(path)
    assert graph_differences(graph, back) == []
    x = np.random.default_rng(2).normal(0.3, 1.0, size=(3, *graph.input.sample_shape))
    a, b = simulate(graph, x, record_spikes=True), simulate(back, x, record_spikes=True)
    np.testing.assert_array_equal(a.output, b.output)
    assert sum(int(s.sum()) for s in a.spikes.values()) > 0
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name], err_msg=name)


FEATURES = {  # what plain NIR cannot say -> the lossy reason its export names
    "spike-pool": (dict(kind="cnn", seed=18, pool=True, stream=True), "max-pools spikes"),
    "event-frames": (dict(kind="cnn", seed=19, frames=4, stream=True), None),
    "event-frames-rate": (dict(kind="cnn", seed=3, frames=4), "event frames' time mean"),
    "analog-stem": (dict(kind="cnn", seed=20, stem=True), "analog stem max-pools"),
}


@pytest.mark.parametrize("leaky", [False, True])
@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_pools_frames_and_stems_round_trip(feature, leaky, tmp_path):
    kw, reason = FEATURES[feature]
    graph = random_graph(**kw)
    if leaky:
        graph = replace(graph, readout=replace(graph.readout, decay=0.25))
    _round_trip(graph, tmp_path)
    lossy = export(graph).lossy
    assert reason is None or any(reason in why for why in lossy), lossy


@pytest.mark.parametrize("shape,pooling", [((1, 8, 8), "max"), ((4, 1, 8, 8), "default")])
def test_zoo_max_pool_and_event_frame_models_round_trip(shape, pooling, tmp_path):
    graph = compiled_family("cnn_digits", shape, "if-hard-reset", pooling=pooling)
    assert graph.pools if pooling == "max" else graph.input.frames == 4
    _round_trip(graph, tmp_path)


def test_a_plain_reader_of_a_spike_pool_sees_a_sum_pool():
    """The SumPool2d stand-in is readable by a plain NIR reader, and what it loses is
    measured (a sum of spikes is not their OR)."""
    graph = compiled_family("cnn_digits", (1, 8, 8), "if-hard-reset", pooling="max")
    exported = export(graph)
    assert [why for why in exported.lossy if "max-pools" in why]
    x = np.random.default_rng(4).uniform(0, 3, size=(8, 1, 8, 8))
    loss = plain_loss(graph, exported, to_bytes(exported), 1e-4, x, None)
    assert loss["readable"], loss
    assert 0 < loss["counts_differ"] <= 1


@pytest.mark.parametrize("family", sorted(DEPLOYABLE_FAMILIES))
@pytest.mark.parametrize("arch,shape", DIGITS_ARCHS + [pytest.param(*c, marks=pytest.mark.slow)
                                                for c in LARGE])
def test_zoo_family_round_trip_is_the_identity(arch, shape, family, tmp_path):
    graph = compiled_family(arch, shape, family)
    path = tmp_path / "m.nir"
    path.write_bytes(to_bytes(export(graph)))
    back = load_nir(path)
    assert graph_differences(graph, back) == []
    x = np.random.default_rng(2).normal(0.3, 1.0, size=(3, *shape))
    a, b = simulate(graph, x, record_spikes=True), simulate(back, x, record_spikes=True)
    np.testing.assert_array_equal(a.output, b.output)
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name], err_msg=name)


def test_the_comparison_catches_one_changed_value():
    graph = compiled_family("cnn_digits", (1, 8, 8), "lif")
    pop = graph.populations[1]
    bias = np.array(pop.bias, copy=True)
    bias.flat[0] += 1e-12
    from dataclasses import replace

    assert graph_differences(graph, graph.with_populations(
        [replace(p, bias=bias) if p is pop else p for p in graph.populations])) == \
        [f"array pop/{pop.name}/bias"]
    assert graph_differences(graph, graph.with_populations(
        [replace(p, v0=p.v0 + 1e-9) if p is pop else p for p in graph.populations])) == \
        ["record populations"]
