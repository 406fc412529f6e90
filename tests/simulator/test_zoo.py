"""Compiled zoo models on the simulator against torch.

* rate coupling (PseudoSN, random weights/BN/T): the simulator's spike counts equal the
  torch eval forward's (float64) and the compiler's reference evaluator's, readouts agree;
  the fixed-point compile equals the reference in integer arithmetic.
* stream coupling (every multi-step family: IF with soft or hard reset, LIF, ASGL, NSNN's
  deterministic threshold neuron): every spike of every neuron (and spike pool) at every
  step equals the neurons' own explicit torch time loop (captured by forward hooks).

SEW-ResNet-18/34 and PreAct-ResNet-34 have the paper's max-pool stems (spikes and analog)
and their average-pool option; ``cnn_digits``/VGG can max-pool spikes; ``vggsnn_dvs``
streams event frames one per step into multi-step neurons (T = frames, IF or LIF) and
gives a PseudoSN first layer their time mean. Spike pools of leaky and hard-reset
neurons pool the real (stepped) train.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pseudosnn.compiler import pipeline  # noqa: E402
from pseudosnn.compiler.frontend import testing as helpers  # noqa: E402
from pseudosnn.compiler.frontend.torch_model import model_to_ir  # noqa: E402
from pseudosnn.compiler.spiking import reference  # noqa: E402
from pseudosnn.simulator.engine import simulate  # noqa: E402

from pseudosnn.models import build_model  # noqa: E402

CASES = [  # (arch, input shape, T granularity[, pooling]); CIFAR models at small sizes
    ("mlp_digits", (64,), "layer"),
    ("mlp_digits", (64,), "neuron"),
    ("cnn_digits", (1, 8, 8), "layer"),
    ("cnn_digits", (1, 8, 8), "channel"),
    ("cnn_digits", (1, 8, 8), "neuron"),
    ("rescnn_digits", (1, 8, 8), "layer"),
    ("rescnn_digits", (1, 8, 8), "channel"),
    ("vgg11", (3, 32, 32), "layer"),
    ("vgg13", (3, 16, 16), "channel"),
    ("vggsnn_cifar", (3, 32, 32), "layer"),
    ("vggsnn_dvs", (2, 2, 16, 16), "layer"),
    ("resnet18", (3, 16, 16), "channel"),
    ("resnet19", (3, 16, 16), "layer"),
    ("sew_resnet18", (3, 32, 32), "layer"),
    ("sew_resnet19", (3, 16, 16), "channel"),
    ("sew_resnet20", (3, 32, 32), "neuron"),
    ("sew_resnet34", (3, 32, 32), "layer"),
    ("preact_resnet34", (3, 16, 16), "layer"),
    ("cnn_digits", (1, 8, 8), "channel", "max"),
    ("vgg11", (3, 32, 32), "layer", "max"),
    ("sew_resnet18", (3, 32, 32), "channel", "avg"),
    ("preact_resnet34", (3, 16, 16), "channel", "avg"),
]
SLOW = {"vgg11", "vgg13", "vggsnn_cifar", "resnet18", "resnet19", "sew_resnet19",
        "sew_resnet34", "preact_resnet34"}
DIGITS = ["mlp_digits", "cnn_digits", "rescnn_digits"]


def _x(shape, batch=3, seed=1):
    return np.random.default_rng(seed).normal(0.3, 1.0, size=(batch, *shape))


def _params(cases):
    return [pytest.param(*c, marks=pytest.mark.slow) if c[0] in SLOW else c for c in cases]


def _pooled(arch: str, pooling: str) -> str:
    from pseudosnn.models.zoo import resolve_pooling

    return resolve_pooling(arch, pooling)


@pytest.mark.parametrize("arch,shape,gran,pooling", _params(
    [(*c, "default") if len(c) == 3 else c for c in CASES]))
def test_rate_zoo_equals_torch_eval(arch, shape, gran, pooling):
    torch.set_num_threads(1)
    model = build_model(arch, num_classes=10, input_shape=shape, pooling=pooling,
                        neuron={"family": "pseudo", "granularity": gran})
    helpers.randomize(model, seed=sum(map(ord, arch)) % 1000)
    x = _x(shape)
    y_torch, c_torch = helpers.torch_counts(model, x)
    graph = pipeline.run(model_to_ir(model)).graph
    assert all(p.coupling == "rate" for p in graph.populations)
    assert graph.input.frames == (shape[0] if len(shape) == 4 else 0)  # their time mean
    maxpool = _pooled(arch, pooling) == "max"
    assert bool(graph.pools) == (maxpool and arch != "preact_resnet34")
    assert (graph.input.stem is not None) == (maxpool and arch == "preact_resnet34")
    res = simulate(graph, x, record_spikes=True)
    ref = reference.evaluate(graph, x)
    assert set(res.counts) == set(c_torch)
    fired = 0
    for name, n in c_torch.items():
        np.testing.assert_array_equal(res.counts[name], n, err_msg=f"{arch}: {name} vs torch")
        np.testing.assert_array_equal(res.counts[name], ref.counts[name])
        fired += int(n.sum())
    assert fired > 0
    np.testing.assert_allclose(res.output, y_torch, rtol=1e-9, atol=1e-9)
    assert res.steps == graph.latency_steps
    assert set(res.compares) == {p.name for p in graph.pools} | (
        {graph.input.stem.name} if graph.input.stem is not None else set())


@pytest.mark.parametrize("arch", DIGITS)
def test_rate_zoo_fixed_point_equals_reference(arch):
    shape = (64,) if arch == "mlp_digits" else (1, 8, 8)
    model = build_model(arch, num_classes=10, input_shape=shape,
                        neuron={"family": "pseudo", "granularity": "channel"
                                if arch != "mlp_digits" else "layer"})
    helpers.randomize(model, seed=3)
    x = _x(shape, batch=4)
    result = pipeline.run(model_to_ir(model), fixed_point=True, calib_x=x)
    fixed = result.fixed
    assert fixed.fixed_point
    res = simulate(fixed, x)
    ref = reference.evaluate(fixed, x)
    for name, n in ref.counts.items():
        np.testing.assert_array_equal(res.counts[name], n, err_msg=name)
    assert sum(int(n.sum()) for n in ref.counts.values()) > 0
    np.testing.assert_array_equal(res.output, ref.output)


STREAM_CASES = [("mlp_digits", (64,), "default"), ("cnn_digits", (1, 8, 8), "default"),
                ("cnn_digits", (1, 8, 8), "max"), ("rescnn_digits", (1, 8, 8), "default"),
                ("vgg11", (3, 16, 16), "default"), ("sew_resnet20", (3, 16, 16), "default"),
                ("vggsnn_dvs", (4, 2, 16, 16), "max"), ("sew_resnet18", (3, 32, 32), "default")]
MULTISTEP = {  # every deployable multi-step family; torch eval is the deployed neuron
    "if": {"family": "if", "T": 4},
    "if-hard-reset": {"family": "if", "T": 4, "reset": "hard", "v_reset": -0.25},
    "lif": {"family": "lif", "T": 4},
    "lif-tau3-decay-input-hard-reset": {"family": "lif", "T": 4, "tau": 3.0,
                                        "decay_input": True, "reset": "hard"},
    "asgl": {"family": "asgl", "T": 3},
    "nsnn-deterministic": {"family": "nsnn", "T": 3, "tau": 1.6, "eval_mode": "deterministic"},
}
STREAM_PARAMS = [pytest.param(*c, fam, marks=pytest.mark.slow) if c[0] in SLOW else (*c, fam)
                 for c in STREAM_CASES for fam in MULTISTEP if c[0] in DIGITS or
                 fam in ("if", "lif")]


@pytest.mark.parametrize("arch,shape,pooling,family", STREAM_PARAMS)
def test_stream_zoo_step_for_step_equals_torch_time_loop(arch, shape, pooling, family):
    torch.set_num_threads(1)
    model = build_model(arch, num_classes=10, input_shape=shape, pooling=pooling,
                        neuron=MULTISTEP[family])
    helpers.randomize(model, seed=7)
    with torch.no_grad():
        for m in model.modules():  # a learnt leak, not the initial 0.5
            if hasattr(m, "decay_logit"):
                m.decay_logit.uniform_(-1.5, 1.5)
    x = _x(shape, batch=3) * 2
    y_torch, trains = helpers.spike_trains(model, x)
    graph = pipeline.run(model_to_ir(model)).graph
    assert any(p.coupling == "stream" for p in graph.populations)
    assert all(p.dynamics.is_if for p in graph.populations) == (family == "if")
    assert bool(graph.pools) == (_pooled(arch, pooling) == "max")
    if len(shape) == 4:  # event frames, one per step, into the stream-coupled first layer
        assert graph.input.frames == 4 and graph.populations[0].coupling == "stream"
    res = simulate(graph.with_populations(graph.populations), x, record_spikes=True)
    assert set(res.spikes) == set(trains)
    fired = 0
    for p in (*graph.populations, *graph.pools):
        sim = res.spikes[p.name]  # (B, steps, *shape) on the global clock
        T = p.t_max
        window = np.moveaxis(sim[:, p.start:p.start + T], 1, 0)  # (T, B, *shape)
        np.testing.assert_array_equal(window, trains[p.name], err_msg=f"{arch}: {p.name}")
        assert not sim[:, :p.start].any() and not sim[:, p.start + T:].any()
        fired += int(window.sum())
    assert fired > 0
    np.testing.assert_allclose(res.output, y_torch, rtol=1e-9, atol=1e-9)
