"""The onnx target: model.onnx in onnxruntime; counts recovered from the rates equal the
reference evaluator's (tie-aware), SOPs = counts × structural fan-out."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.compiler import ir, onnx_io, pipeline
from pseudosnn.compiler.spiking import counting, reference
from pseudosnn.compiler.spiking.backend import UnsupportedFeature


def _net(rng):
    return ir.Graph((2, 6, 6), (
        ir.conv("c0", "input", rng.normal(0, 0.6, (4, 2, 3, 3)), rng.normal(0, 0.1, 4),
                padding=(1, 1)),
        ir.neuron("n0", "c0", rng.integers(1, 9, (4, 1, 1))),
        ir.conv("c1", "n0", rng.normal(0, 0.6, (5, 4, 3, 3)), None, stride=(2, 2),
                padding=(1, 1)),
        ir.neuron("n1", "c1", 6, out_scale=0.7),
        ir.gemm("fc", "n1", rng.normal(0, 1, (3, 45)), rng.normal(0, 0.1, 3)),
    ), "fc")


def test_run_from_artifact_matches_reference(tmp_path):
    from pseudosnn.backends.registry import get_backend
    from pseudosnn.compiler import artifact

    rng = np.random.default_rng(4)
    g = _net(rng)
    res = pipeline.run(g)
    artifact.save(res.graph, tmp_path / "a", target="onnx",
                  extra_files={"model.onnx": onnx_io.to_onnx(g).SerializeToString()})
    backend = get_backend("onnx", artifact=tmp_path / "a")
    graph = artifact.load(tmp_path / "a")
    x = rng.normal(0, 1, (4, 2, 6, 6))
    run = backend.run(graph, x)
    ref = reference.evaluate(graph, x)
    np.testing.assert_allclose(run.output, ref.output, rtol=1e-5, atol=1e-5)
    for name in ("n0", "n1"):
        diff = run.counts[name] != ref.counts[name]
        assert diff.sum() <= 1, name  # a float32 tie at most
    fan = counting.fanout(graph.projections[1], graph.shape_of("n0"))
    assert run.sops["c1"] == int(np.sum(run.counts["n0"] * fan))
    # the encoder's structural synapses (a 3x3 conv, padding 1, on 6x6: 16 of its 36
    # outputs see all 9 taps, 16 see 6, 4 see 4), not the 9 * 36 padded taps
    taps = 16 * 9 + 16 * 6 + 4 * 4
    assert run.macs == 4 * 2 * 4 * taps and run.steps == graph.latency_steps


def test_stream_graph_is_refused(rng):
    from pseudosnn.backends.onnx_backend import OnnxBackend
    from pseudosnn.compiler.testing import random_graph

    g = random_graph("mlp", stream=True)
    with pytest.raises(UnsupportedFeature, match="onnx target does not support "
                                                  "stream-coupled populations"):
        OnnxBackend(b"unused").run(g, np.zeros((1, 16)))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
