"""Model zoo: every architecture builds, runs in both modes, and has the walkable shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pseudosnn.models import (
    ARCHITECTURES,
    RESIDUAL_BLOCKS,
    Readout,
    ResidualAdd,
    SeqToANN,
    SpikePool,
    UnknownArchitecture,
    build_model,
)
from pseudosnn.neurons import SpikingNeuron

SMALL_INPUT = {"mlp_digits": (1, 8, 8), "cnn_digits": (1, 8, 8), "rescnn_digits": (1, 8, 8),
               "vggsnn_dvs": (2, 2, 16, 16), "sew_resnet18": (3, 32, 32),
               "sew_resnet34": (3, 32, 32), "preact_resnet34": (3, 32, 32)}
EXPECTED_NEURONS = {"vgg11": 8, "vgg13": 10, "vggsnn_cifar": 8, "resnet18": 17, "resnet19": 18,
                    "sew_resnet20": 21, "sew_resnet34": 36, "preact_resnet34": 32}


_BUILT: dict[str, nn.Module] = {}


def built(arch: str) -> nn.Module:
    """One model per architecture for this module (building the big ones takes seconds)."""
    if arch not in _BUILT:
        torch.manual_seed(0)
        _BUILT[arch] = build_model(arch, num_classes=7, input_shape=SMALL_INPUT.get(
            arch, (3, 16, 16)), neuron={"family": "pseudo", "granularity": "channel"})
    return _BUILT[arch]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_arch_trains_and_evaluates(arch):
    shape = SMALL_INPUT.get(arch, (3, 16, 16))
    model = built(arch)
    x = torch.randn(2, *shape)
    out = model.train()(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert model.readout.fc.weight.grad is not None
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 7)
    names = [n for n, _ in model.neurons()]
    assert names and len(names) == len(set(names))
    if arch in EXPECTED_NEURONS:
        assert len(names) == EXPECTED_NEURONS[arch]
    assert (model.arch, model.num_classes, model.input_shape) == (arch, 7, shape)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_walkable_structure(arch):
    """body holds only SeqToANN, neurons, residual blocks and spike pools; max pooling only
    where the paper has it: of the SEW stems' spikes, of PreAct's analog stem."""
    model = built(arch)
    assert [n for n, _ in model.named_children()] == ["body", "readout"]
    assert isinstance(model.readout, Readout)
    for item in model.body:
        assert isinstance(item, (SeqToANN, SpikingNeuron, SpikePool, *RESIDUAL_BLOCKS)), \
            type(item)
    pools = [n for n, m in model.named_modules() if isinstance(m, nn.MaxPool2d)]
    expected = {"sew_resnet18": ["body.1.pool"], "sew_resnet34": ["body.1.pool"],
                "preact_resnet34": ["body.1.0"]}.get(arch, [])
    assert pools == expected
    assert all(m.kernel_size == 3 and m.stride == 2 and m.padding == 1
               for m in model.modules() if isinstance(m, nn.MaxPool2d))


@pytest.mark.parametrize("arch", ["sew_resnet18", "preact_resnet34", "cnn_digits", "vgg11"])
def test_pooling_option(arch):
    """``pooling="avg"`` puts 2x2 average pooling where the paper max-pools; ``"max"``
    pools spikes in the digits CNN and the VGGs; the checkpoint record keeps the choice."""
    from pseudosnn.checkpoint import model_record
    from pseudosnn.models import build_from_record

    shape = (1, 8, 8) if arch == "cnn_digits" else (3, 32, 32)
    avg = build_model(arch, num_classes=7, input_shape=shape, pooling="avg")
    mx = build_model(arch, num_classes=7, input_shape=shape, pooling="max")
    assert not any(isinstance(m, nn.MaxPool2d) for m in avg.modules())
    assert any(isinstance(m, nn.MaxPool2d) for m in mx.modules())
    assert (avg.pooling, mx.pooling) == ("avg", "max")
    rebuilt = build_from_record(model_record(mx))
    assert rebuilt.pooling == "max" and rebuilt.state_dict().keys() == mx.state_dict().keys()
    old = {k: v for k, v in model_record(avg).items() if k != "pooling"}  # before pooling
    assert build_from_record(old).pooling == "avg"
    with torch.no_grad():
        assert mx.eval()(torch.randn(2, *shape)).shape == (2, 7)
    with pytest.raises(ValueError, match="resnet18 has no pooling after a neuron"):
        build_model("resnet18", num_classes=7, input_shape=(3, 8, 8), pooling="max")


def test_neuron_shapes_match_activations():
    model = build_model("rescnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "pseudo", "granularity": "neuron"})
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.shape))
             for name, m in model.neurons()]
    model.train()(torch.randn(3, 1, 8, 8))
    for h in hooks:
        h.remove()
    for name, m in model.neurons():
        assert tuple(seen[name][2:]) == m.shape, name


def test_eval_rate_model_is_a_quantised_ann():
    """In eval mode each PseudoSN outputs round(clip(c)*T)/T."""
    torch.manual_seed(0)
    model = build_model("mlp_digits", num_classes=10, input_shape=(1, 8, 8)).eval()
    x = torch.randn(4, 1, 8, 8)
    sn = dict(model.neurons())["body.2"]
    got = {}
    sn.register_forward_hook(lambda m, i, o: got.update(i=i[0], o=o))
    with torch.no_grad():
        model(x)
    T = sn.timesteps().item()
    c = (got["i"].mean(0) * sn.scale + sn.bias).clamp(0, 1)
    assert torch.allclose(got["o"][0], torch.floor(c * T + 0.5) / T)


def test_other_families_plug_in():
    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "relu"})
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_dvs_input_is_time_major_frames():
    model = build_model("vggsnn_dvs", num_classes=10, input_shape=(4, 2, 48, 48)).train()
    seen = []
    model.body[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    model(torch.randn(2, 4, 2, 48, 48))
    assert seen[0] == (4, 2, 2, 48, 48)


def test_residual_add_modes():
    a = torch.arange(2.0).view(2, 1)
    b = torch.arange(10.0, 15.0).view(5, 1)
    assert torch.equal(ResidualAdd()(a, a), 2 * a)
    assert torch.allclose(ResidualAdd("mean")(a, b), torch.tensor([[0.5 + 12.0]]))
    # mirror: [0, 1] -> [0, 1, 1, 0, 1] then added
    assert ResidualAdd("mirror")(a, b).flatten().tolist() == [10.0, 12.0, 13.0, 13.0, 15.0]


def test_unknown_arch_names_close_matches():
    with pytest.raises(UnknownArchitecture, match="resnet19"):
        build_model("resnet91", num_classes=10, input_shape=(3, 32, 32))


def test_seq_to_ann_rejects_other_layers():
    with pytest.raises(TypeError, match="ReLU"):
        SeqToANN(nn.ReLU())


def test_wrong_input_shape_is_named():
    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"expects input \[B, 1, 8, 8\]"):
        model(torch.randn(2, 3, 8, 8))
