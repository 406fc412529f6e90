"""IR <-> ONNX: checker-valid, onnxruntime == IR evaluator, spiking attributes round-trip."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper
from pseudosnn.compiler import ir, onnx_io


def _graph(rng):
    nodes = (
        ir.conv("c1", "input", rng.normal(0, 0.5, (4, 2, 3, 3)), rng.normal(0, 0.1, 4),
                padding=(1, 1)),
        ir.Node("bn", "BatchNorm", ("c1",), attrs={"eps": 1e-5}, params={
            "gamma": rng.uniform(0.5, 1.5, 4), "beta": rng.normal(0, 0.1, 4),
            "mean": rng.normal(0, 0.1, 4), "var": rng.uniform(0.5, 1.5, 4)}),
        ir.neuron("n1", "bn", rng.integers(1, 9, (4, 1, 1)), scale=rng.uniform(0.5, 1.5, (4, 1, 1)),
                  bias=0.05, coupling="stream"),
        ir.Node("p", "AvgPool", ("n1",), attrs={"kernel": (2, 2), "stride": (2, 2),
                                               "padding": (0, 0)}),
        ir.conv("c2", "p", rng.normal(0, 0.5, (5, 4, 3, 3)), None, padding=(1, 1)),
        ir.neuron("n2", "c2", 6, threshold=2.0, v0=0.0, out_scale=1.5),
        ir.Node("add", "Add", ("n2", "c2")),
        ir.Node("g", "GlobalAvgPool", ("add",)),
        ir.Node("f", "Flatten", ("g",)),
        ir.gemm("fc", "f", rng.normal(0, 1, (3, 5)), rng.normal(0, 0.1, 3)),
    )
    return ir.Graph((2, 8, 8), nodes, "fc", meta={"arch": "hand-made"})


def test_checker_and_onnxruntime_equal_ir(rng):
    g = _graph(rng)
    model = onnx_io.to_onnx(g)
    onnx.checker.check_model(model, full_check=True)
    x = rng.normal(0, 1, (3, 2, 8, 8))
    out = onnx_io.run_onnxruntime(model, x, extra_outputs=["n1", "n2"])
    ev = ir.evaluate(g, x)
    np.testing.assert_allclose(out["fc"], ev.output, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["n1"], ev.values["n1"], atol=1e-6)


def test_roundtrip_keeps_spiking_attributes(rng, tmp_path):
    g = _graph(rng)
    path = tmp_path / "m.onnx"
    onnx.save(onnx_io.to_onnx(g), path)
    back = onnx_io.from_onnx(str(path))
    for a, b in zip(g.nodes, back.nodes, strict=True):
        assert (a.name, a.op, a.inputs) == (b.name, b.op, b.inputs)
        if a.op == "Neuron":
            assert a.attrs == b.attrs
            np.testing.assert_array_equal(a.params["timesteps"], b.params["timesteps"])
    assert back.meta["arch"] == "hand-made"
    x = rng.normal(0, 1, (2, 2, 8, 8))
    np.testing.assert_allclose(ir.evaluate(back, x).output, ir.evaluate(g, x).output,
                               rtol=1e-6, atol=1e-6)


def _with_node(model: onnx.ModelProto, node: onnx.NodeProto) -> onnx.ModelProto:
    g = model.graph
    first = g.node[0]
    node.input[0], first.input[0] = "input", node.output[0]
    g.node.insert(0, node)
    return model


def test_maxpool_of_the_input_reads_as_the_analog_stem(rng):
    """A standard MaxPool before any neuron is the encoder's analog stem; with ceil_mode
    it has no fixed window and is refused by name."""
    from pseudosnn.compiler import pipeline

    model = onnx_io.to_onnx(_graph(rng))
    mp = helper.make_node("MaxPool", ["input"], ["mp"], name="pool0", kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1])
    back = onnx_io.from_onnx(_with_node(model, mp))
    assert back.node("pool0").op == "MaxPool"
    stem = pipeline.run(back).graph.input.stem
    assert stem is not None and stem.weight is None and stem.pool_kernel == (3, 3)
    mp = helper.make_node("MaxPool", ["input"], ["mp"], name="pool1", kernel_shape=[2, 2],
                          ceil_mode=1)
    with pytest.raises(ir.IRError, match="'pool1': ceil_mode and dilation"):
        onnx_io.from_onnx(_with_node(onnx_io.to_onnx(_graph(rng)), mp))


def test_unknown_op_lists_supported(rng):
    model = onnx_io.to_onnx(_graph(rng))
    model = _with_node(model, helper.make_node("Relu", ["input"], ["r"], name="act"))
    with pytest.raises(onnx_io.UnsupportedLayerError, match="Relu.*'act'.*Supported"):
        onnx_io.from_onnx(model)
