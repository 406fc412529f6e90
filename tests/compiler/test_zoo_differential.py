"""Every zoo model, random weights/BN stats/T: torch eval (float64) == the IR before and
after every pass == onnxruntime (float32, tie-aware) == the reference evaluator of the
lowered graph. The SEW-ResNet-18/34 and PreAct-ResNet-34 stems max-pool (spikes, analog)
as in the paper, and with their average-pool option; max pools of spikes in the digits CNN
and a VGG; ``vggsnn_dvs`` with PseudoSN reads the time mean of its frames."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.compiler import ir, onnx_io, pipeline
from pseudosnn.compiler.frontend.torch_model import model_to_ir
from pseudosnn.compiler.spiking import reference

torch = pytest.importorskip("torch")

# (arch, input shape, granularity); CIFAR models at small sizes for speed
CASES = [
    ("mlp_digits", (64,), "layer"),
    ("mlp_digits", (64,), "neuron"),
    ("cnn_digits", (1, 8, 8), "layer"),
    ("cnn_digits", (1, 8, 8), "channel"),
    ("cnn_digits", (1, 8, 8), "neuron"),
    ("rescnn_digits", (1, 8, 8), "channel"),
    ("rescnn_digits", (1, 8, 8), "neuron"),
    ("vgg11", (3, 32, 32), "layer"),
    ("vgg13", (3, 16, 16), "channel"),
    ("vggsnn_cifar", (3, 24, 24), "layer"),
    ("vggsnn_dvs", (2, 2, 16, 16), "layer"),
    ("resnet18", (3, 8, 8), "channel"),
    ("resnet19", (3, 8, 8), "layer"),
    ("sew_resnet18", (3, 32, 32), "layer"),
    ("sew_resnet19", (3, 8, 8), "channel"),
    ("sew_resnet20", (3, 16, 16), "neuron"),
    ("sew_resnet34", (3, 32, 32), "layer"),
    ("preact_resnet34", (3, 16, 16), "channel"),
    ("cnn_digits", (1, 8, 8), "channel", "max"),
    ("vggsnn_cifar", (3, 24, 24), "layer", "max"),
    ("sew_resnet18", (3, 32, 32), "layer", "avg"),
    ("preact_resnet34", (3, 16, 16), "layer", "avg"),
]
SLOW = {"vgg11", "vgg13", "vggsnn_cifar", "vggsnn_dvs", "sew_resnet34", "resnet19",
        "sew_resnet19", "sew_resnet18", "resnet18", "preact_resnet34"}


def _neuron(graph, name):
    """The neuron node ``name`` is (or whose spikes the spike pool ``name`` pools)."""
    node = graph.node(name)
    return graph.node(node.inputs[0]) if node.op == "SpikeMaxPool" else node


def _tie_margin(node, ev) -> float:
    """How close the neuron's count after any step ``k <= T`` is to flipping, over the
    batch: ``min_k |q_k − round(q_k)|``, ``q_k = (v0 + k·c)/θ`` (a pool's count depends on
    every step's)."""
    c = ir.neuron_current(node, ev.values[node.inputs[0]])
    T = np.asarray(node.params["timesteps"])
    qs = [(node.attrs["v0"] + np.minimum(k, T) * c) / node.attrs["threshold"]
          for k in range(1, int(T.max()) + 1)]
    return float(min(np.min(np.abs(q - np.round(q))) for q in qs))


def _x(shape, batch=1, seed=1):
    return np.random.default_rng(seed).normal(0.3, 1.0, size=(batch, *shape))


@pytest.mark.parametrize("arch,shape,gran,pooling", [
    pytest.param(*c, marks=pytest.mark.slow) if c[0] in SLOW else c
    for c in ((*c, "default") if len(c) == 3 else c for c in CASES)])
def test_torch_onnx_reference_agree(arch, shape, gran, pooling):
    from pseudosnn.models import build_model

    torch.set_num_threads(1)
    model = build_model(arch, num_classes=10, input_shape=shape, pooling=pooling,
                        neuron={"family": "pseudo", "granularity": gran})
    from pseudosnn.compiler.frontend import testing as helpers

    helpers.randomize(model, seed=hash(arch) % 1000)
    x = _x(shape)
    y_torch, c_torch = helpers.torch_counts(model, x)
    graph = model_to_ir(model)
    x_ir = x.mean(axis=1) if len(shape) == 4 else x  # event frames: their time mean
    events = [n.name for n in graph.nodes if n.op in ("Neuron", "SpikeMaxPool")]

    # torch == IR (float64 both): identical counts (neurons and spike pools), equal outputs
    ev = ir.evaluate(graph, x_ir)
    assert helpers.first_mismatch(c_torch, ev.counts, events) is None
    np.testing.assert_allclose(ev.output, y_torch, rtol=1e-9, atol=1e-9)

    # IR == onnxruntime (float32): outputs close; counts (neurons and spike pools) equal
    # unless a float32 tie flipped
    onnx_out = onnx_io.run_onnxruntime(onnx_io.to_onnx(graph), x_ir, extra_outputs=events)
    mism = helpers.first_mismatch(
        {k: np.rint(onnx_out[k].astype(np.float64) * np.asarray(_neuron(graph, k).params[
            "timesteps"]) / _neuron(graph, k).attrs["out_scale"]).astype(np.int64)
         for k in events}, ev.counts, events)
    if mism is None:
        np.testing.assert_allclose(onnx_out[graph.output], ev.output, rtol=1e-4, atol=1e-4)
    else:  # only at a tie: the float64 value must sit on a rounding boundary
        assert _tie_margin(_neuron(graph, mism[0]), ev) < 1e-4, mism

    # before and after every pass (verify=True compares each stage with the one before),
    # then the lowered graph's reference evaluator against torch
    result = pipeline.run(graph, verify=True, verify_samples=1)
    ref = reference.evaluate(result.graph, x)  # event frames: the graph takes their mean
    np.testing.assert_allclose(ref.output, y_torch, rtol=1e-9, atol=1e-9)
    assert helpers.first_mismatch(c_torch, ref.counts, events) is None
    assert set(ref.counts) == set(c_torch)


@pytest.mark.parametrize("arch,shape", [("cnn_digits", (1, 8, 8)),
                                        ("rescnn_digits", (1, 8, 8))])
@pytest.mark.parametrize("same_T", [True, False])
def test_paper_eval_rule_matches_the_simulator(arch, shape, same_T):
    """Neurons with ``eval_rule="paper"``: stream where T matches; the compiled graph run on
    the cycle-accurate simulator equals torch eval wherever no mirror padding is needed."""
    from pseudosnn.backends.registry import get_backend
    from pseudosnn.compiler.frontend import testing as helpers

    from pseudosnn.models import build_model

    model = build_model(arch, num_classes=10, input_shape=shape, residual_mode="mirror",
                        neuron={"family": "pseudo", "eval_rule": "paper"})
    helpers.randomize(model, seed=7)
    if same_T:
        for m in model.modules():
            if hasattr(m, "logit"):
                m.logit.data.fill_(0.0)
    model = model.double().eval()
    result = pipeline.run(model_to_ir(model))
    couplings = {p.coupling for p in result.graph.populations[1:]}
    mirror_warned = any("mirror-padded" in w for w in result.graph.meta.get("warnings", []))
    if same_T:
        assert couplings == {"stream"} and not mirror_warned
    x = _x(shape, batch=3)
    with torch.no_grad():
        y = model(torch.as_tensor(x)).numpy()
    out = get_backend("numpy").run(result.graph, x).output
    if not mirror_warned:
        np.testing.assert_allclose(out, y, atol=1e-9)


FAMILIES = {  # every deployable family other than PseudoSN (above), as deployed
    "qcfs": {"family": "qcfs"},
    "multispike": {"family": "multispike"},
    "if": {"family": "if"},
    "if-hard-reset": {"family": "if", "reset": "hard"},
    "lif": {"family": "lif"},
    "asgl": {"family": "asgl"},
    "nsnn": {"family": "nsnn", "eval_mode": "deterministic"},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("arch,shape", [("mlp_digits", (64,)), ("cnn_digits", (1, 8, 8)),
                                        ("rescnn_digits", (1, 8, 8))])
def test_baseline_families_compile_to_their_eval(family, arch, shape):
    """QCFS and MultiSpike (rate populations with their own threshold/scale/out_scale) and
    the multi-step families (stream coupling after the encoder: IF with soft or hard reset,
    LIF, ASGL's spiking eval, NSNN's deterministic threshold neuron) equal their torch eval
    on the simulator."""
    from pseudosnn.backends.registry import get_backend
    from pseudosnn.compiler.frontend import testing as helpers

    from pseudosnn.models import build_model

    model = build_model(arch, num_classes=10, input_shape=shape, neuron=FAMILIES[family])
    helpers.randomize(model, seed=3)
    model = model.double().eval()
    result = pipeline.run(model_to_ir(model))
    if family not in ("qcfs", "multispike"):
        assert {p.coupling for p in result.graph.populations[1:]} == {"stream"}
        assert not result.graph.meta["warnings"]
    x = _x(shape, batch=3)
    with torch.no_grad():
        y = model(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(get_backend("numpy").run(result.graph, x).output, y, atol=1e-9)


def test_relu_is_not_deployable_and_says_why():
    from pseudosnn.compiler.frontend.torch_model import FrontendError

    from pseudosnn.models import build_model

    model = build_model("mlp_digits", num_classes=10, input_shape=(64,),
                        neuron={"family": "relu"})
    with pytest.raises(FrontendError, match=r"neuron 'body\.2' .* cannot be compiled"):
        model_to_ir(model.eval())


@pytest.mark.parametrize("neuron,words", [
    ({"family": "asgl"}, "ASGL trains with spike noise (a fraction p=0.2"),
    ({"family": "nsnn"}, "NSNN fires stochastically in training and at eval"),
    ({"family": "nsnn", "eval_mode": "deterministic"}, "NSNN fires stochastically in training "),
])
def test_families_whose_training_forward_differs_say_so_naming_the_layers(neuron, words):
    from pseudosnn.models import build_model

    model = build_model("mlp_digits", num_classes=10, input_shape=(64,), neuron=neuron)
    notes = model_to_ir(model.eval()).meta["deploy_notes"]
    assert len(notes) == 1 and notes[0]["layers"] == ["body.2", "body.4"]
    assert words in notes[0]["note"]
    for family in ("lif", "if"):
        model = build_model("mlp_digits", num_classes=10, input_shape=(64,),
                            neuron={"family": family})
        assert "deploy_notes" not in model_to_ir(model.eval()).meta
