"""ours -> NIR -> ours is the identity: every deployable zoo family (PseudoSN at every
granularity, the multi-step IF/LIF/ASGL/NSNN families, QCFS, MultiSpike), compiled, exported
with the NIR exporter and read back, gives the same graph (every record and array) and the
same simulation, spike for spike."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.backends.nir_backend import export, to_bytes
from pseudosnn.compiler.frontend.nir import load_nir
from pseudosnn.compiler.frontend.testing import (
    DEPLOYABLE_FAMILIES,
    DIGITS_ARCHS,
    compiled_family,
)
from pseudosnn.compiler.testing import graph_differences
from pseudosnn.simulator.engine import simulate

torch = pytest.importorskip("torch")
pytest.importorskip("nir")

LARGE = [("vgg11", (3, 16, 16)), ("sew_resnet20", (3, 16, 16)), ("resnet19", (3, 8, 8))]


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
