"""The model zoo: the paper's architectures and three small digits models, each with any
neuron family, built from a config by :func:`build_model`."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from pseudosnn.errors import PseudoSNNError
from pseudosnn.models.blocks import BasicBlock, PreActBlock, SEWBlock, conv_bn
from pseudosnn.models.layers import Readout, ResidualAdd, SeqToANN, SpikePool
from pseudosnn.neurons import SpikingNeuron, make_neuron

POOLINGS = ("default", "max", "avg")
PAPER_MAX_POOL = {"sew_resnet18", "sew_resnet34", "preact_resnet34"}
"""Architectures whose stems max-pool in the paper (3x3, stride 2, padding 1): the
SEW-ResNets the stem neuron's spikes, PreAct-ResNet-34 the analog stem before any neuron."""
MAX_POOL_OPTIONAL = {"cnn_digits", "vgg11", "vgg13", "vggsnn_cifar", "vggsnn_dvs"}
"""Architectures whose 2x2 average pools follow a neuron and may pool its spikes instead."""


class UnknownArchitecture(PseudoSNNError, ValueError):
    """An architecture name that is not in the zoo."""


class SpikingNetwork(nn.Module):
    """``readout(body(x))`` on time-major tensors.

    ``forward(x)`` takes ``[B, *input_shape]``; a 3-d ``input_shape`` ``(C, H, W)`` (or 1-d)
    becomes ``[1, B, ...]``, a 4-d one ``(T, C, H, W)`` (event frames) becomes
    ``[T, B, C, H, W]``; it returns logits ``[B, num_classes]``.
    """

    def __init__(self, body: nn.Sequential, readout: Readout, *, arch: str, num_classes: int,
                 input_shape: tuple[int, ...], neuron_config: dict[str, Any],
                 residual_mode: str = "mean", pooling: str = "avg") -> None:
        super().__init__()
        self.body, self.readout = body, readout
        self.arch, self.num_classes = arch, num_classes
        self.input_shape = tuple(input_shape)
        self.neuron_config = dict(neuron_config)
        self.residual_mode = residual_mode
        self.pooling = pooling

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            dims = ", ".join(map(str, self.input_shape))
            raise ValueError(f"{self.arch} expects input [B, {dims}], got {list(x.shape)}")
        return x.transpose(0, 1) if len(self.input_shape) == 4 else x.unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.body(self.to_time_major(x)))

    def neurons(self) -> Iterator[tuple[str, SpikingNeuron]]:
        """``(module name, neuron)`` in forward order."""
        for name, m in self.named_modules():
            if isinstance(m, SpikingNeuron):
                yield name, m


class _Builder:
    """Tracks the feature shape while layers are appended, so neurons know their shape."""

    def __init__(self, input_shape: tuple[int, ...], neuron: dict[str, Any], residual_mode: str,
                 pooling: str = "avg"):
        self.shape = tuple(input_shape[-3:]) if len(input_shape) >= 3 else tuple(input_shape)
        cfg = dict(neuron)
        self.family = cfg.pop("family", "pseudo")
        self.kwargs = cfg
        self.residual_mode = residual_mode
        self.pooling = pooling  # "max" or "avg" (see POOLINGS)
        self.layers: list[nn.Module] = []

    # shape-tracking factories (return a module, update self.shape) --------------------
    def neuron(self, shape: tuple[int, ...] | None = None) -> SpikingNeuron:
        return make_neuron(self.family, tuple(shape or self.shape), **self.kwargs)

    def conv(self, cout: int, kernel: int = 3, stride: int = 1, padding: int | None = None
             ) -> SeqToANN:
        c, h, w = self.shape
        pad = kernel // 2 if padding is None else padding
        self.shape = (cout, (h + 2 * pad - kernel) // stride + 1,
                      (w + 2 * pad - kernel) // stride + 1)
        return conv_bn(c, cout, kernel, stride, pad)

    def _pooled(self, kernel: int, stride: int | None, padding: int) -> int:
        c, h, w = self.shape
        s = stride or kernel
        self.shape = (c, (h + 2 * padding - kernel) // s + 1, (w + 2 * padding - kernel) // s + 1)
        return s

    def pool(self, kernel: int = 2, stride: int | None = None, padding: int = 0) -> nn.Module:
        return nn.AvgPool2d(kernel, self._pooled(kernel, stride, padding), padding)

    def max_pool(self, kernel: int = 2, stride: int | None = None, padding: int = 0
                 ) -> nn.Module:
        return nn.MaxPool2d(kernel, self._pooled(kernel, stride, padding), padding)

    def adaptive_pool(self, size: int) -> nn.Module:
        self.shape = (self.shape[0], size, size)
        return nn.AdaptiveAvgPool2d((size, size))

    def flatten(self) -> nn.Module:
        self.shape = (int(torch.tensor(self.shape).prod()),)
        return nn.Flatten()

    def linear_bn(self, out: int, bn: bool = True) -> SeqToANN:
        (f,) = self.shape
        self.shape = (out,)
        mods = [nn.Linear(f, out, bias=not bn)] + ([nn.BatchNorm1d(out)] if bn else [])
        return SeqToANN(*mods)

    # appenders -------------------------------------------------------------------------
    def add(self, *modules: nn.Module) -> None:
        self.layers.extend(modules)

    def conv_sn(self, cout: int, kernel: int = 3, stride: int = 1, padding: int | None = None):
        self.add(self.conv(cout, kernel, stride, padding), self.neuron())

    def spike_pool(self, kernel: int, stride: int | None = None, padding: int = 0) -> None:
        """Max-pool the spikes of the neuron appended last (it becomes a SpikePool)."""
        sn = self.layers.pop()
        if not isinstance(sn, SpikingNeuron):
            raise TypeError(f"spike pooling needs a neuron before it, got {type(sn).__name__}")
        self.add(SpikePool(sn, self.max_pool(kernel, stride, padding)))

    def downsample2(self, *after: nn.Module) -> None:
        """The 2x2 pooling after a neuron: of its spikes (``pooling="max"``) or an average
        pool; ``after`` (e.g. a flatten) follows in the same SeqToANN."""
        if self.pooling == "max":
            self.spike_pool(2)
            if after:
                self.add(SeqToANN(*after))
        else:
            self.add(SeqToANN(self.pool(2), *after))

    def basic_block(self, planes: int, stride: int) -> None:
        cin = self.shape[0]
        conv1 = self.conv(planes, 3, stride)
        sn1 = self.neuron()
        conv2 = self.conv(planes, 3, 1)
        shortcut = None
        if stride != 1 or cin != planes:
            shortcut = conv_bn(cin, planes, 1, stride, 0)
        self.add(BasicBlock(conv1, sn1, conv2, shortcut, self.neuron(),
                            ResidualAdd(self.residual_mode)))

    def sew_block(self, planes: int, stride: int) -> None:
        cin = self.shape[0]
        conv1 = self.conv(planes, 3, stride)
        sn1 = self.neuron()
        conv2 = self.conv(planes, 3, 1)
        sn2 = self.neuron()
        shortcut = shortcut_sn = None
        if stride != 1 or cin != planes:
            shortcut, shortcut_sn = conv_bn(cin, planes, 1, stride, 0), self.neuron()
        self.add(SEWBlock(conv1, sn1, conv2, sn2, shortcut, shortcut_sn,
                          ResidualAdd(self.residual_mode)))

    def preact_block(self, planes: int, stride: int) -> None:
        cin = self.shape[0]
        sn1 = self.neuron()
        conv1 = self.conv(planes, 3, stride)
        sn2 = self.neuron()
        conv2 = self.conv(planes, 3, 1)
        shortcut = conv_bn(cin, planes, 1, stride, 0) if stride != 1 or cin != planes else None
        self.add(PreActBlock(sn1, conv1, sn2, conv2, shortcut, ResidualAdd(self.residual_mode)))

    def stages(self, block: Callable[[int, int], None], widths, depths, first_stride=1):
        for i, (planes, depth) in enumerate(zip(widths, depths, strict=True)):
            for j in range(depth):
                block(planes, (first_stride if i == 0 else 2) if j == 0 else 1)

    def finish(self, num_classes: int) -> tuple[nn.Sequential, Readout]:
        (f,) = self.shape
        return nn.Sequential(*self.layers), Readout(f, num_classes)


# --- architectures (each fills a builder) ---------------------------------------------
def _mlp_digits(b: _Builder) -> None:
    b.add(SeqToANN(b.flatten()))
    for width in (128, 128):
        b.add(b.linear_bn(width), b.neuron())


def _cnn_digits(b: _Builder) -> None:
    b.conv_sn(16)
    b.conv_sn(32)
    b.downsample2()
    b.conv_sn(64)
    b.downsample2()
    b.add(SeqToANN(b.flatten()))
    b.add(b.linear_bn(128), b.neuron())


def _rescnn_digits(b: _Builder) -> None:
    b.conv_sn(16)
    b.basic_block(32, 2)  # 1x1 strided shortcut conv
    b.basic_block(32, 1)  # identity shortcut
    b.add(SeqToANN(b.pool(2), b.flatten()))


VGG_FEATURES = {
    "vgg11": [64, "A", 128, 256, "A", 512, 512, "A", 512, "A", 512, 512, "AA1"],
    "vgg13": [64, 64, "A", 128, 128, "A", 256, 256, "A", 512, 512, 512, "A", 512, "AA1"],
    "vggsnn_cifar": [64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "AA3"],
    "vggsnn_dvs": [64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"],
}


def _vgg(name: str) -> Callable[[_Builder], None]:
    def build(b: _Builder) -> None:
        for item in VGG_FEATURES[name]:
            if item == "A":
                b.downsample2()
            elif isinstance(item, str):  # "AA<k>": adaptive average pooling to k x k
                b.add(SeqToANN(b.adaptive_pool(int(item[2:]))))
            else:
                b.conv_sn(item)
        b.add(SeqToANN(b.flatten()))
    return build


def _resnet18(b: _Builder) -> None:
    b.conv_sn(64)
    b.stages(b.basic_block, (64, 128, 256, 512), (2, 2, 2, 2))
    b.add(SeqToANN(b.adaptive_pool(1), b.flatten()))


def _resnet19(b: _Builder) -> None:
    b.conv_sn(128)
    b.stages(b.basic_block, (128, 256, 512), (3, 3, 2))
    b.add(SeqToANN(b.adaptive_pool(1), b.flatten()))
    b.add(b.linear_bn(256, bn=False), b.neuron())


def _sew_imagenet(depths) -> Callable[[_Builder], None]:
    def build(b: _Builder) -> None:
        b.conv_sn(64, 7, 2, 3)
        if b.pooling == "max":
            b.spike_pool(3, 2, 1)  # the paper's MaxPool2d(3, 2, 1) on the stem's spikes
        else:
            b.add(SeqToANN(b.pool(2)))  # option: 2x2 average pooling
        b.stages(b.sew_block, (64, 128, 256, 512), depths)
        b.add(SeqToANN(b.adaptive_pool(1), b.flatten()))
    return build


def _sew_resnet19(b: _Builder) -> None:
    b.conv_sn(64)
    b.stages(b.sew_block, (128, 256, 512), (3, 3, 2))
    b.add(SeqToANN(b.adaptive_pool(1), b.flatten()))
    b.add(b.linear_bn(256, bn=False), b.neuron())


def _sew_resnet20(b: _Builder) -> None:
    b.conv_sn(16)
    b.stages(b.sew_block, (16, 32, 64), (3, 3, 3))
    b.add(SeqToANN(b.adaptive_pool(1), b.flatten()))


def _preact_resnet34(b: _Builder) -> None:
    b.add(b.conv(64, 7, 2, 3))
    if b.pooling == "max":  # the paper's MaxPool2d(3, 2, 1) of the analog stem (encoder)
        b.add(SeqToANN(b.max_pool(3, 2, 1)))
    else:
        b.add(SeqToANN(b.pool(2)))  # option: 2x2 average pooling
    b.stages(b.preact_block, (64, 128, 256, 512), (3, 4, 6, 3))
    b.add(SeqToANN(b.adaptive_pool(1), b.flatten()))


ARCHITECTURES: dict[str, Callable[[_Builder], None]] = {
    "mlp_digits": _mlp_digits,
    "cnn_digits": _cnn_digits,
    "rescnn_digits": _rescnn_digits,
    "vgg11": _vgg("vgg11"),
    "vgg13": _vgg("vgg13"),
    "vggsnn_cifar": _vgg("vggsnn_cifar"),
    "vggsnn_dvs": _vgg("vggsnn_dvs"),
    "resnet18": _resnet18,
    "resnet19": _resnet19,
    "sew_resnet18": _sew_imagenet((2, 2, 2, 2)),
    "sew_resnet19": _sew_resnet19,
    "sew_resnet20": _sew_resnet20,
    "sew_resnet34": _sew_imagenet((3, 4, 6, 3)),
    "preact_resnet34": _preact_resnet34,
}


def check_arch(arch: str) -> None:
    """Raise :class:`UnknownArchitecture` naming close matches for an unknown name."""
    if arch not in ARCHITECTURES:
        close = difflib.get_close_matches(str(arch), ARCHITECTURES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownArchitecture(f"unknown architecture {arch!r}{hint} (known: "
                                  f"{', '.join(ARCHITECTURES)})")


def resolve_pooling(arch: str, pooling: str = "default") -> str:
    """``"max"`` or ``"avg"``: ``"default"`` is the paper's (max-pool stems for
    :data:`PAPER_MAX_POOL`, average pooling elsewhere)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
    if pooling == "default":
        return "max" if arch in PAPER_MAX_POOL else "avg"
    if pooling == "max" and arch not in PAPER_MAX_POOL | MAX_POOL_OPTIONAL:
        raise ValueError(f"{arch} has no pooling after a neuron to make a max pool; use "
                         f"pooling=avg (max pooling: {sorted(PAPER_MAX_POOL | MAX_POOL_OPTIONAL)})")
    return pooling


def build_model(arch: str, *, num_classes: int, input_shape: tuple[int, ...],
                neuron: dict[str, Any] | None = None, residual_mode: str = "mean",
                pooling: str = "default") -> SpikingNetwork:
    """Build ``arch`` for ``input_shape`` (``(C, H, W)``, ``(F,)`` or event frames
    ``(T, C, H, W)``) with neurons ``make_neuron(neuron["family"], shape, **rest)``
    (family defaults to ``"pseudo"``) and ``pooling`` (:func:`resolve_pooling`)."""
    check_arch(arch)
    pooling = resolve_pooling(arch, pooling)
    neuron = dict(neuron or {"family": "pseudo"})
    input_shape = tuple(int(s) for s in input_shape)
    if arch != "mlp_digits" and len(input_shape) not in (3, 4):
        raise ValueError(f"{arch} needs an image input shape (C, H, W) or (T, C, H, W), "
                         f"got {input_shape}")
    builder = _Builder(input_shape, neuron, residual_mode, pooling)
    ARCHITECTURES[arch](builder)
    body, readout = builder.finish(num_classes)
    model = SpikingNetwork(body, readout, arch=arch, num_classes=num_classes,
                           input_shape=input_shape, neuron_config=neuron,
                           residual_mode=residual_mode, pooling=pooling)
    _init_weights(model)
    return model


def build_from_record(rec: dict[str, Any]) -> SpikingNetwork:
    """The model a checkpoint's model record describes (``checkpoint.model_record``);
    records written before max-pool stems existed mean average pooling."""
    return build_model(rec["arch"], num_classes=int(rec["num_classes"]),
                       input_shape=tuple(rec["input_shape"]), neuron=dict(rec["neuron"]),
                       residual_mode=rec.get("residual_mode", "mean"),
                       pooling=rec.get("pooling", "avg"))


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
