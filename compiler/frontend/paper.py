"""Checkpoints written by the paper's public code (deng-ai-lab/PseudoSNN) -> IR.

Such a checkpoint is ``{"model": state_dict, "args": Namespace(model=..., min_T=...,
max_T=...), ...}``. Layers are wrapped in ``SeqToANNContainer`` (keys like
``feature.0.0.weight``); a ``PseudoNeuron`` holds scalars ``logit``, ``scale``, ``bias`` and
deploys as an integrate-and-fire population with ``θ = 1``, ``v0 = 1/2`` (its IF node
fires at ``v + 0.5 >= 1``), current ``scale·x + bias`` and
``T = round(min_T + (max_T − min_T)·sigmoid(logit))``.

The paper's eval rule couples a layer by *stream* when its input train has the layer's
own ``T`` and by *rate* (time mean) otherwise; every neuron therefore asks for stream and
:func:`pseudosnn.compiler.passes.schedule.assign_couplings` grants it where the trains line
up (and warns where a mirror-padded residual sum forces rate). ``coupling="rate"`` compiles
every layer with the rate rule instead.

Supported layouts (read from the keys, widths from the weights): ``vgg11``, ``vgg13``,
``vggsnn_cifar``, ``vggsnn_dvs`` (models/noisy/vgg.py), ``resnet18``, ``resnet19``
(models/noisy/resnet.py), the SEW-ResNets (models/noisy/sew_resnet.py, ADD connection):
CIFAR ``sew_resnet19``/``sew_resnet20`` and ImageNet ``sew_resnet18``/``sew_resnet34``,
whose stem max-pools the stem neuron's spikes (``MaxPool2d(3, 2, 1)`` per step: a
``SpikeMaxPool``), and ``preact_resnet34`` (models/noisy/preact_resnet.py), whose stem
max-pools the analog ``conv1``/``bn1`` output before any neuron (an analog ``MaxPool``:
part of the encoder). Residual sums are the paper's ``pad_and_add`` (``meta
["residual_mode"] = "mirror"``): a 1-step analog value (PreAct's stem) repeats through a
stream window. ``vggsnn_dvs`` reads event frames, ``(10, 2, 48, 48)`` by default (the
paper's ``cifar10dvs_aug/T10``): a first layer with ``T = 10`` streams them one per step,
any other ``T`` takes their time mean (the paper's rule).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.frontend.torch_model import FrontendError
from pseudosnn.compiler.onnx_io import unsupported

# Feature configurations of the paper's VGGs (numbers: conv widths; "A": 2x2 average
# pooling; "AA<k>": adaptive average pooling to k x k), as in the zoo.
PAPER_VGG = {
    "vgg11": [64, "A", 128, 256, "A", 512, 512, "A", 512, "A", 512, 512, "AA1"],
    "vgg13": [64, 64, "A", 128, 128, "A", 256, 256, "A", 512, 512, 512, "A", 512, "AA1"],
    "vggsnn_cifar": [64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "AA3"],
    "vggsnn_dvs": [64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"],
}
DEFAULT_INPUT = {"vggsnn_dvs": (10, 2, 48, 48), "sew_resnet18": (3, 224, 224),
                 "sew_resnet34": (3, 224, 224), "preact_resnet34": (3, 224, 224)}
CIFAR_INPUT = (3, 32, 32)
IMAGENET_SEW = ("sew_resnet18", "sew_resnet34")
SUPPORTED = (*PAPER_VGG, "resnet18", "resnet19", "sew_resnet19", "sew_resnet20",
             *IMAGENET_SEW, "preact_resnet34")
STEM_POOL = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1)}
"""The ImageNet stems' ``MaxPool2d(kernel_size=3, stride=2, padding=1)``."""
SEW_DEFAULT_T_RANGE = (1, 16)
"""PseudoNeuron's default min_T/max_T, which the paper's SEW blocks after a stage's first
keep (its _make_layer does not pass **kwargs to them)."""
NEURON_KEYS = ("logit", "scale", "bias")
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _arr(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=np.float64)


class _Builder:
    def __init__(self, sd: dict, input_shape, min_t: int, max_t: int, coupling: str):
        self.sd = sd
        self.used: set[str] = set()
        self.nodes: list[ir.Node] = []
        self.shapes = {ir.INPUT: tuple(input_shape)}
        self.min_t, self.max_t, self.coupling = min_t, max_t, coupling

    def take(self, key: str) -> np.ndarray:
        if key not in self.sd:
            raise KeyError(key)
        self.used.add(key)
        return _arr(self.sd[key])

    def has(self, prefix: str) -> bool:
        return any(k.startswith(prefix + ".") for k in self.sd)

    def emit(self, node: ir.Node) -> str:
        self.shapes[node.name] = ir.node_shape(node, [self.shapes[i] for i in node.inputs])
        self.nodes.append(node)
        return node.name

    def conv(self, p: str, x: str, stride: int = 1, padding: int | None = None) -> str:
        w = self.take(f"{p}.weight")
        b = self.take(f"{p}.bias") if f"{p}.bias" in self.sd else None
        pad = w.shape[2] // 2 if padding is None else padding
        return self.emit(ir.conv(p, x, w, b, (stride, stride), (pad, pad)))

    def bn(self, p: str, x: str) -> str:
        vals = {k: self.take(f"{p}.{k}") for k in BN_KEYS[:4]}
        if f"{p}.num_batches_tracked" in self.sd:
            self.take(f"{p}.num_batches_tracked")
        return self.emit(ir.Node(p, "BatchNorm", (x,), attrs={"eps": 1e-5}, params={
            "gamma": vals["weight"], "beta": vals["bias"], "mean": vals["running_mean"],
            "var": vals["running_var"]}))

    def linear(self, p: str, x: str) -> str:
        b = self.take(f"{p}.bias") if f"{p}.bias" in self.sd else None
        return self.emit(ir.gemm(p, x, self.take(f"{p}.weight"), b))

    def neuron(self, p: str, x: str, t_range: tuple[int, int] | None = None) -> str:
        logit, scale, bias = (self.take(f"{p}.{k}") for k in NEURON_KEYS)
        lo, hi = t_range or (self.min_t, self.max_t)
        t = lo + (hi - lo) / (1.0 + math.exp(-float(logit)))
        T = int(np.round(t))  # half to even, like torch.round
        if not 1 <= T <= hi:
            raise FrontendError(f"neuron {p!r}: T = {T} outside 1..{hi} (check "
                                "min_T/max_T in the checkpoint's args)")
        return self.emit(ir.neuron(p, x, np.int64(T), threshold=1.0, v0=0.5, scale=float(scale),
                                   bias=float(bias), coupling=self.coupling))

    def pool(self, p: str, x: str, item: str) -> str:
        c, h, w = self.shapes[x]
        if item == "A":
            return self.emit(ir.Node(p, "AvgPool", (x,), attrs={"kernel": (2, 2),
                                                                "stride": (2, 2),
                                                                "padding": (0, 0)}))
        k = int(item[2:])
        if k == 1:
            return self.emit(ir.Node(p, "GlobalAvgPool", (x,)))
        wy, wx = ir.adaptive_pool_window(h, k), ir.adaptive_pool_window(w, k)
        if wy is None or wx is None:
            raise unsupported(f"AdaptiveAvgPool2d({k}) on a {h}x{w} map", p)
        return self.emit(ir.Node(p, "AvgPool", (x,), attrs={
            "kernel": (wy[0], wx[0]), "stride": (wy[1], wx[1]), "padding": (0, 0)}))


def _vgg(b: _Builder, arch: str) -> str:
    x, idx = ir.INPUT, 0
    for item in PAPER_VGG[arch]:
        if isinstance(item, str):
            x = b.pool(f"feature.{idx}", x, item)
            idx += 1
        else:
            x = b.conv(f"feature.{idx}.0", x)
            x = b.bn(f"feature.{idx + 1}.0", x)
            x = b.neuron(f"feature.{idx + 2}", x)
            idx += 3
    x = b.emit(ir.Node("flatten", "Flatten", (x,)))
    j = 0
    while f"classifier.{j}.0.weight" in b.sd:
        x = b.linear(f"classifier.{j}.0", x)
        if f"classifier.{j + 1}.logit" in b.sd:
            x = b.neuron(f"classifier.{j + 1}", x)
        j += 2
    return x


def _blocks(b: _Builder, shortcut: str) -> Iterator[tuple[str, int, int, bool]]:
    """``(prefix, index in stage, stride, has a shortcut)`` of every block
    ``layer{1..4}.{j}`` in the state dict; a stage after the first strides by 2 in its
    first block, which has a shortcut (key ``<prefix>.<shortcut>``)."""
    for layer in range(1, 5):
        j = 0
        while b.has(f"layer{layer}.{j}"):
            p = f"layer{layer}.{j}"
            down = f"{p}.{shortcut}" in b.sd
            yield p, j, 2 if down and layer > 1 and j == 0 else 1, down
            j += 1


def _resnet(b: _Builder) -> str:
    x = b.neuron("sn0", b.bn("conv0.1", b.conv("conv0.0", ir.INPUT)))
    for p, _, stride, down in _blocks(b, "shortcut.0.weight"):
        h = b.neuron(f"{p}.sn1", b.bn(f"{p}.conv1.1", b.conv(f"{p}.conv1.0", x, stride)))
        h = b.bn(f"{p}.conv2.1", b.conv(f"{p}.conv2.0", h))
        skip = x
        if down:
            skip = b.bn(f"{p}.shortcut.1", b.conv(f"{p}.shortcut.0", x, stride, 0))
        x = b.neuron(f"{p}.sn2", b.emit(ir.Node(f"{p}.add", "Add", (h, skip))))
    x = b.emit(ir.Node("flatten", "Flatten", (b.emit(ir.Node("avg_pool", "GlobalAvgPool",
                                                              (x,))),)))
    if "classifier.0.weight" in b.sd:  # resnet18: SeqToANNContainer(Linear)
        return b.linear("classifier.0", x)
    x = b.neuron("classifier.1", b.linear("classifier.0.0", x))  # resnet19
    return b.linear("classifier.2.0", x)


def _sew(b: _Builder, imagenet: bool) -> str:
    x = b.neuron("sn1", b.bn("bn1", b.conv("conv1", ir.INPUT, 2 if imagenet else 1)))
    if imagenet:  # SeqToANNContainer(MaxPool2d(3, 2, 1)) on the stem's spike train
        x = b.emit(ir.Node("maxpool", "SpikeMaxPool", (x,), attrs=dict(STEM_POOL)))
    for p, j, stride, down in _blocks(b, "downsample.0.0.weight"):
        # the CIFAR models' _make_layer passes **kwargs (min_T/max_T) to a stage's first
        # block only, later blocks keep PseudoNeuron's defaults; the ImageNet SEWResNet
        # passes them to every block
        rng = None if j == 0 or imagenet else SEW_DEFAULT_T_RANGE
        h = b.neuron(f"{p}.sn1", b.bn(f"{p}.conv1.1", b.conv(f"{p}.conv1.0", x, stride)), rng)
        h = b.neuron(f"{p}.sn2", b.bn(f"{p}.conv2.1", b.conv(f"{p}.conv2.0", h)), rng)
        skip = x
        if down:
            skip = b.neuron(f"{p}.downsample.1", b.bn(
                f"{p}.downsample.0.1", b.conv(f"{p}.downsample.0.0", x, stride, 0)))
        x = b.emit(ir.Node(f"{p}.add", "Add", (h, skip)))
    x = b.emit(ir.Node("flatten", "Flatten", (b.emit(ir.Node("avgpool", "GlobalAvgPool",
                                                              (x,))),)))
    if imagenet:  # nn.Linear on the time mean
        return b.linear("fc", x)
    x = b.linear("fc.0.0", x)
    if "fc.1.logit" in b.sd:  # sew_resnet19: Linear, neuron, Linear
        x = b.linear("fc.2.0", b.neuron("fc.1", x))
    return x


def _preact(b: _Builder) -> str:
    """preact_resnet34: conv1 (bias) -> bn1 -> MaxPool2d(3, 2, 1) on the analog stem, then
    blocks ``add(conv2(sn2(conv1(sn1(x)))), downsample(x) or x)`` (convs with bias)."""
    x = b.emit(ir.Node("maxpool", "MaxPool", (b.bn("bn1", b.conv("conv1", ir.INPUT, 2)),),
                       attrs=dict(STEM_POOL)))
    for p, _, stride, down in _blocks(b, "downsample.0.weight"):
        h = b.bn(f"{p}.conv1.1", b.conv(f"{p}.conv1.0", b.neuron(f"{p}.sn1", x), stride))
        h = b.bn(f"{p}.conv2.1", b.conv(f"{p}.conv2.0", b.neuron(f"{p}.sn2", h)))
        skip = x
        if down:
            skip = b.bn(f"{p}.downsample.1", b.conv(f"{p}.downsample.0", x, stride, 0))
        x = b.emit(ir.Node(f"{p}.add", "Add", (h, skip)))
    x = b.emit(ir.Node("flatten", "Flatten", (b.emit(ir.Node("avgpool", "GlobalAvgPool",
                                                              (x,))),)))
    return b.linear("fc", x)


def _arg(args, key, default=None):
    return args.get(key, default) if isinstance(args, dict) else getattr(args, key, default)


def paper_to_ir(ckpt: dict, input_shape: tuple[int, ...] | None = None,
                max_timesteps: int | None = None, coupling: str = "stream") -> ir.Graph:
    """IR of a paper checkpoint (``coupling="stream"``: the paper's rule; ``"rate"``: all
    layers rate-coupled)."""
    args = ckpt["args"]
    arch = str(_arg(args, "model", ""))
    if arch not in SUPPORTED:
        raise FrontendError(f"paper model {arch!r} is not supported; supported: "
                            f"{', '.join(SUPPORTED)}")
    if not _arg(args, "use_noise", True):
        raise FrontendError("this checkpoint was trained with the paper's vanilla (LIF) models "
                            "(use_noise=False): LIF neurons have no integrate-and-fire form")
    min_t, max_t = int(_arg(args, "min_T", 1)), int(_arg(args, "max_T", 16))
    if max_timesteps is not None:
        max_t = min(max_t, max_timesteps)
    sd = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    shape = tuple(input_shape or DEFAULT_INPUT.get(arch, CIFAR_INPUT))
    frames = 0
    if len(shape) == 4:  # event frames (T, C, H, W)
        frames, shape = int(shape[0]), shape[1:]
    b = _Builder(sd, shape, min_t, max_t, coupling)
    try:
        if arch in PAPER_VGG:
            out = _vgg(b, arch)
        elif arch.startswith("resnet"):
            out = _resnet(b)
        elif arch == "preact_resnet34":
            out = _preact(b)
        else:
            out = _sew(b, imagenet=arch in IMAGENET_SEW)
    except KeyError as exc:
        missing = exc.args[0]
        raise FrontendError(
            f"the state dict does not match the paper's {arch!r} layout: missing key "
            f"{missing!r}; unexpected keys: {sorted(set(sd) - b.used)[:20]}") from exc
    except ir.IRError as exc:
        raise FrontendError(f"the paper's {arch!r} weights do not fit an input of {shape}: "
                            f"{exc}; pass --input-shape") from exc
    unexpected = sorted(k for k in set(sd) - b.used if not k.endswith("num_batches_tracked"))
    if unexpected:
        raise FrontendError(f"the state dict does not match the paper's {arch!r} layout: "
                            f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
    meta = {"arch": arch, "source": "paper checkpoint (deng-ai-lab/PseudoSNN)",
            "residual_mode": "mirror"}  # the paper's pad_and_add
    if frames:
        meta["frames"] = frames
    graph = ir.Graph(shape, tuple(b.nodes), out, meta=meta)
    ir.check(graph, max_timesteps)
    return graph
