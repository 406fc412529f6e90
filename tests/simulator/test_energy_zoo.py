"""The ANN baseline's counts on every zoo architecture against an independent count taken
by torch forward hooks.

Ours: ``counting.ann_ops`` of the layers the compiler records (``ir.trained_layers``).
Theirs: hooks on every ``Conv2d``/``Linear``/pool/``ResidualAdd`` module during one forward
of one sample; a conv's structural MACs are the sum of ``conv2d(ones, ones-kernel)`` (the
taps that land on real pixels, per output), a linear layer's ``in·out``, a pool's adds
its window taps the same way (adaptive pools: torch's window rule), a residual sum's
one add per output.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from pseudosnn.compiler import ir  # noqa: E402
from pseudosnn.compiler.frontend.torch_model import model_to_ir  # noqa: E402
from pseudosnn.compiler.spiking import counting  # noqa: E402
from torch import nn  # noqa: E402

from pseudosnn.models import build_model  # noqa: E402
from pseudosnn.models.layers import ResidualAdd  # noqa: E402
from pseudosnn.models.zoo import ARCHITECTURES  # noqa: E402

SHAPES = {"mlp_digits": (64,), "cnn_digits": (1, 8, 8), "rescnn_digits": (1, 8, 8),
          "vggsnn_dvs": (1, 2, 32, 32)}  # one event frame: its time mean is itself
SLOW = {"vgg13", "resnet18", "resnet19", "sew_resnet34", "preact_resnet34"}


def _taps(x: torch.Tensor, out_channels: int, groups: int, kernel, stride, padding) -> int:
    """Structural taps of a window op on one sample ``x`` (C, H, W): per output, the
    kernel entries that land on real pixels."""
    c = x.shape[-3]
    ones = torch.ones(1, *x.shape[-3:])
    w = torch.ones(out_channels, c // groups, *kernel)
    return int(F.conv2d(ones, w, stride=stride, padding=padding, groups=groups).sum())


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def torch_hook_ops(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """``{"macs", "adds", "compares"}`` of one forward of one sample, counted by module
    hooks (a max pool's compares are its window taps; a SpikePool's once, though its eval
    pools every step of a train)."""
    from pseudosnn.models import SpikePool

    ops = {"macs": 0, "adds": 0, "compares": 0}
    in_spike_pools = {id(m.pool) for m in model.modules() if isinstance(m, SpikePool)}

    def hook(m, inp, out):
        x0 = inp[0]
        if isinstance(m, SpikePool | nn.MaxPool2d):
            pool = m.pool if isinstance(m, SpikePool) else m
            k = _pair(pool.kernel_size)
            ops["compares"] += _taps(x0, x0.shape[-3], x0.shape[-3], k,
                                     _pair(pool.stride or k), _pair(pool.padding))
        if isinstance(m, nn.Conv2d):
            ops["macs"] += _taps(x0, m.out_channels, m.groups, m.kernel_size, m.stride,
                                 m.padding)
        elif isinstance(m, nn.Linear):
            ops["macs"] += m.in_features * m.out_features
        elif isinstance(m, nn.AvgPool2d):
            k = _pair(m.kernel_size)
            ops["adds"] += _taps(x0, x0.shape[-3], x0.shape[-3], k, _pair(m.stride or k),
                                 _pair(m.padding))
        elif isinstance(m, nn.AdaptiveAvgPool2d):  # torch's windows: [⌊i·n/o⌋, ⌈(i+1)·n/o⌉)
            ops["adds"] += x0.shape[-3] * math.prod(
                sum(math.ceil((i + 1) * n / o) - i * n // o for i in range(o))
                for n, o in zip(x0.shape[-2:], _pair(m.output_size), strict=True))
        elif isinstance(m, ResidualAdd):
            ops["adds"] += out[0, 0].numel()  # two terms: one add per output, time-major

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, nn.Conv2d | nn.Linear | nn.AvgPool2d | nn.AdaptiveAvgPool2d
                           | ResidualAdd | SpikePool | nn.MaxPool2d)
             and id(m) not in in_spike_pools]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return ops


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.slow) if a in SLOW else a
                                  for a in ARCHITECTURES])
def test_ann_ops_equal_a_torch_hook_count(arch):
    shape = SHAPES.get(arch, (3, 32, 32))
    model = build_model(arch, num_classes=10, input_shape=shape).eval()
    ours = counting.ann_ops(ir.trained_layers(model_to_ir(model)))
    theirs = torch_hook_ops(model, torch.randn(1, *shape))
    assert ours == theirs
    assert ours["macs"] > 0


def test_trained_layers_record_the_neurons_they_read_and_feed():
    """The quantised ANN's widths and each layer's ANN counterpart come from these routes."""
    from pseudosnn.compiler import pipeline

    model = build_model("rescnn_digits", num_classes=10, input_shape=(1, 8, 8)).eval()
    layers = {la.name: la for la in ir.trained_layers(model_to_ir(model))}
    pops = {p.name for p in pipeline.run(model_to_ir(model)).graph.populations}
    assert layers["body.0.0"].reads == ("input",) and layers["body.0.0"].feeds == "body.1"
    assert layers["body.2.conv2.0"].reads == ("body.2.sn1",)
    assert layers["body.2.conv2.0"].feeds == "body.2.sn2"
    assert layers["body.2.add"].reads == ()  # a sum of conv outputs: accumulated values
    assert layers["readout.fc"].feeds == "" and layers["readout.fc"].reads == ("body.3.sn2",)
    assert {la.feeds for la in layers.values()} <= pops | {""}
