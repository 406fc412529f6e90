"""ours -> NIR -> ours is the identity: every deployable zoo family (PseudoSN at every
granularity, the multi-step IF/LIF/ASGL/NSNN families, QCFS, MultiSpike), compiled, exported
with the NIR exporter and read back, gives the same graph (every record and array) and the
same simulation, spike for spike."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.backends.nir_backend import export, to_bytes
from pseudosnn.compiler import pipeline
from pseudosnn.compiler.artifact import graph_to_records
from pseudosnn.compiler.frontend.nir import load_nir
from pseudosnn.simulator.engine import simulate

torch = pytest.importorskip("torch")
pytest.importorskip("nir")

FAMILIES = {
    "pseudo-layer": {"family": "pseudo", "granularity": "layer"},
    "pseudo-channel": {"family": "pseudo", "granularity": "channel"},
    "pseudo-neuron": {"family": "pseudo", "granularity": "neuron"},
    "qcfs": {"family": "qcfs"},
    "multispike": {"family": "multispike"},
    "if": {"family": "if", "T": 4},
    "if-hard-reset": {"family": "if", "T": 4, "reset": "hard", "v_reset": -0.25},
    "lif": {"family": "lif", "T": 4},
    "lif-hard-reset": {"family": "lif", "T": 4, "tau": 3.0, "decay_input": True,
                       "reset": "hard"},
    "asgl": {"family": "asgl", "T": 3},
    "nsnn": {"family": "nsnn", "T": 3, "eval_mode": "deterministic"},
}
ARCHS = [("mlp_digits", (64,)), ("cnn_digits", (1, 8, 8)), ("rescnn_digits", (1, 8, 8))]
LARGE = [("vgg11", (3, 16, 16)), ("sew_resnet20", (3, 16, 16)), ("resnet19", (3, 8, 8))]


def compiled(arch, shape, family):
    from pseudosnn.compiler.frontend import testing as helpers
    from pseudosnn.compiler.frontend.torch_model import model_to_ir

    from pseudosnn.models import build_model

    model = build_model(arch, num_classes=10, input_shape=shape, neuron=FAMILIES[family])
    helpers.randomize(model, seed=5)
    return pipeline.run(model_to_ir(model.double().eval())).graph


def assert_same_graph(a, b):
    desc_a, arr_a = graph_to_records(a)
    desc_b, arr_b = graph_to_records(b)
    assert desc_a == desc_b
    assert arr_a.keys() == arr_b.keys()
    for k in arr_a:
        assert arr_a[k].dtype == arr_b[k].dtype and arr_a[k].shape == arr_b[k].shape, k
        np.testing.assert_array_equal(arr_a[k], arr_b[k], err_msg=k)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("arch,shape", ARCHS + [pytest.param(*c, marks=pytest.mark.slow)
                                                for c in LARGE])
def test_zoo_family_round_trip_is_the_identity(arch, shape, family, tmp_path):
    graph = compiled(arch, shape, family)
    path = tmp_path / "m.nir"
    path.write_bytes(to_bytes(export(graph)))
    back = load_nir(path)
    assert_same_graph(graph, back)
    x = np.random.default_rng(2).normal(0.3, 1.0, size=(3, *shape))
    a, b = simulate(graph, x, record_spikes=True), simulate(back, x, record_spikes=True)
    np.testing.assert_array_equal(a.output, b.output)
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name], err_msg=name)


def test_the_comparison_catches_one_changed_value():
    graph = compiled("cnn_digits", (1, 8, 8), "lif")
    pop = graph.populations[1]
    bias = np.array(pop.bias, copy=True)
    bias.flat[0] += 1e-12
    from dataclasses import replace

    with pytest.raises(AssertionError):
        assert_same_graph(graph, graph.with_populations(
            [replace(p, bias=bias) if p is pop else p for p in graph.populations]))
    with pytest.raises(AssertionError):
        assert_same_graph(graph, graph.with_populations(
            [replace(p, v0=p.v0 + 1e-9) if p is pop else p for p in graph.populations]))
