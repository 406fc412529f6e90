"""Checkpoints in the layout of the paper's public code (deng-ai-lab/PseudoSNN): keys and
``args`` written here by hand (the paper's code is not imported), compiled, and compared
with an independent re-implementation of that code's eval forward (IF node firing at
``v + 0.5 >= 1``, soft reset; a layer runs step by step when its input train has its own T
and on the time mean otherwise; mirror-padded residual sums)."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from click.testing import CliRunner
from pseudosnn.compiler import artifact
from pseudosnn.compiler.frontend.paper import paper_to_ir
from pseudosnn.compiler.frontend.torch_model import FrontendError
from pseudosnn.compiler.spiking import reference

from pseudosnn.cli import main

torch = pytest.importorskip("torch")
F = torch.nn.functional
MIN_T, MAX_T = 1, 8


def _logit_for(T):
    r = (T - MIN_T) / (MAX_T - MIN_T)
    r = min(max(r, 1e-3), 1 - 1e-3)
    return math.log(r / (1 - r))


class _SD(dict):
    """A state dict being written in the paper's layout."""

    def __init__(self, seed):
        super().__init__()
        self.g = torch.Generator().manual_seed(seed)

    def conv(self, p, cin, cout, k, bias=False):
        std = (1.5 / (cin * k * k)) ** 0.5
        self[f"{p}.weight"] = torch.randn(cout, cin, k, k, generator=self.g) * std
        if bias:
            self[f"{p}.bias"] = torch.randn(cout, generator=self.g) * 0.1

    def block_convs(self, p, cin, cout, bias=False):
        """A block's ``conv1`` and ``conv2`` (3x3) with their BNs (``.0``/``.1`` keys)."""
        for k, c in (("conv1", cin), ("conv2", cout)):
            self.conv(f"{p}.{k}.0", c, cout, 3, bias=bias)
            self.bn(f"{p}.{k}.1", cout)

    def bn(self, p, c):
        self[f"{p}.weight"] = 0.5 + torch.rand(c, generator=self.g)
        self[f"{p}.bias"] = torch.randn(c, generator=self.g) * 0.2 + 0.2
        self[f"{p}.running_mean"] = torch.randn(c, generator=self.g) * 0.1
        self[f"{p}.running_var"] = 0.5 + torch.rand(c, generator=self.g)
        self[f"{p}.num_batches_tracked"] = torch.tensor(100)

    def neuron(self, p, T):
        self[f"{p}.logit"] = torch.tensor(_logit_for(T))
        self[f"{p}.scale"] = torch.tensor(0.8 + 0.4 * float(torch.rand((), generator=self.g)))
        self[f"{p}.bias"] = torch.tensor(0.05)

    def linear(self, p, fin, fout):
        self[f"{p}.weight"] = torch.randn(fout, fin, generator=self.g) * (2.0 / fin) ** 0.5
        self[f"{p}.bias"] = torch.randn(fout, generator=self.g) * 0.1


# --- an independent re-implementation of the paper's eval forward ----------------------
def _T(sd, p):
    t = MIN_T + (MAX_T - MIN_T) * torch.sigmoid(sd[f"{p}.logit"].double())
    return int(torch.round(t))


def _neuron(sd, p, x):
    T = _T(sd, p)
    x = x * sd[f"{p}.scale"].double() + sd[f"{p}.bias"].double()
    drive = x if x.shape[0] == T else x.mean(0, keepdim=True).expand(T, *x.shape[1:])
    v, out = torch.zeros_like(drive[0]), []
    for t in range(T):
        v = v + drive[t]
        s = (v + 0.5 - 1.0 >= 0).double()
        v = v - s
        out.append(s)
    return torch.stack(out)


def _seq(fn, x):
    t, b = x.shape[:2]
    y = fn(x.flatten(0, 1))
    return y.view(t, b, *y.shape[1:])


def _conv(sd, p, x, stride=1, pad=None):
    w = sd[f"{p}.weight"].double()
    b = sd.get(f"{p}.bias")
    pad = w.shape[2] // 2 if pad is None else pad
    return _seq(lambda z: F.conv2d(z, w, None if b is None else b.double(), stride, pad), x)


def _bn(sd, p, x):
    return _seq(lambda z: F.batch_norm(z, sd[f"{p}.running_mean"].double(),
                                       sd[f"{p}.running_var"].double(),
                                       sd[f"{p}.weight"].double(), sd[f"{p}.bias"].double(),
                                       False, 0.0, 1e-5), x)


def _pad_and_add(a, b):
    if a.shape[0] == b.shape[0]:
        return a + b
    short, long = sorted([a, b], key=lambda t: t.shape[0])
    diff = long.shape[0] - short.shape[0]
    idx = torch.arange(short.shape[0] - 1, short.shape[0] - 1 - diff, -1) % short.shape[0]
    return torch.cat([short, short[idx]]) + long


def _resnet19_forward(sd, x):
    out = _neuron(sd, "sn0", _bn(sd, "conv0.1", _conv(sd, "conv0.0", x.unsqueeze(0))))
    for layer, j, stride in [(1, 0, 1), (2, 0, 2), (2, 1, 1)]:
        p = f"layer{layer}.{j}"
        h = _neuron(sd, f"{p}.sn1", _bn(sd, f"{p}.conv1.1", _conv(sd, f"{p}.conv1.0", out,
                                                                   stride)))
        h = _bn(sd, f"{p}.conv2.1", _conv(sd, f"{p}.conv2.0", h))
        skip = out
        if f"{p}.shortcut.0.weight" in sd:
            skip = _bn(sd, f"{p}.shortcut.1", _conv(sd, f"{p}.shortcut.0", out, stride, 0))
        out = _neuron(sd, f"{p}.sn2", _pad_and_add(h, skip))
    out = _seq(lambda z: z.mean((2, 3)), out)
    out = _neuron(sd, "classifier.1", _seq(lambda z: F.linear(
        z, sd["classifier.0.0.weight"].double(), sd["classifier.0.0.bias"].double()), out))
    out = _seq(lambda z: F.linear(z, sd["classifier.2.0.weight"].double(),
                                  sd["classifier.2.0.bias"].double()), out)
    return out.mean(0)


def _resnet19_sd(Ts, seed=0, c=(4, 6), hidden=8):
    """resnet19's layout (models/noisy/resnet.py) with small widths: conv0, layer1.0
    (identity shortcut), layer2.0 (strided 1x1 shortcut), layer2.1, classifier."""
    sd, T = _SD(seed), iter(Ts)
    sd.conv("conv0.0", 3, c[0], 3)
    sd.bn("conv0.1", c[0])
    sd.neuron("sn0", next(T))
    for layer, j, cin, cout in [(1, 0, c[0], c[0]), (2, 0, c[0], c[1]), (2, 1, c[1], c[1])]:
        p = f"layer{layer}.{j}"
        sd.block_convs(p, cin, cout)
        sd.neuron(f"{p}.sn1", next(T))
        if cin != cout:
            sd.conv(f"{p}.shortcut.0", cin, cout, 1)
            sd.bn(f"{p}.shortcut.1", cout)
        sd.neuron(f"{p}.sn2", next(T))
    sd.linear("classifier.0.0", c[1], hidden)
    sd.neuron("classifier.1", next(T))
    sd.linear("classifier.2.0", hidden, 10)
    return dict(sd)


def _args(model="resnet19"):
    return argparse.Namespace(model=model, min_T=MIN_T, max_T=MAX_T, use_noise=True,
                              noise_type="uniform", init_T=4.0, data_type="cifar10")


def _simulate(graph, x):
    from pseudosnn.backends.registry import get_backend

    return get_backend("numpy").run(graph, x).output


@pytest.mark.parametrize("Ts,streams", [
    ([4] * 8, {"layer1.0.sn1", "layer1.0.sn2", "layer2.0.sn1", "layer2.0.sn2",
               "layer2.1.sn1", "layer2.1.sn2", "classifier.1"}),   # one T: stream everywhere
    # heterogeneous T, residual summands of equal length: stream where T matches the input
    ([3, 3, 5, 5, 2, 2, 6, 4], {"layer1.0.sn1", "layer2.0.sn1", "layer2.1.sn1"}),
])
def test_resnet19_layout_matches_the_papers_eval(tmp_path, Ts, streams):
    sd = _resnet19_sd(Ts)
    path = tmp_path / "paper.pth"
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}, "args": _args(),
                "epoch": 3, "max_test_acc1": 0.5}, path)
    res = CliRunner().invoke(main, ["compile", str(path), "-o", str(tmp_path / "a"),
                                    "--input-shape", "3,8,8"])
    assert res.exit_code == 0, res.output
    graph = artifact.load(tmp_path / "a")
    assert {p.name for p in graph.populations if p.coupling == "stream"} == streams
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = _resnet19_forward(sd, x).numpy()
    np.testing.assert_allclose(_simulate(graph, x.numpy()), expected, atol=1e-9)


def test_mirror_padded_sum_falls_back_to_rate_with_a_warning(tmp_path):
    # layer1.0.sn2 reads a 2-step train (sn1) plus the 4-step block input (sn0): mirror
    # padding; layer2.0.sn2 reads two 4-step trains with its own T 2: the time mean, the
    # paper's rule, silently
    sd = _resnet19_sd([4, 2, 4, 4, 2, 2, 2, 4])
    g = paper_to_ir({"model": sd, "args": _args()}, input_shape=(3, 8, 8))
    from pseudosnn.compiler import pipeline

    res = pipeline.run(g)
    assert res.graph.population("layer1.0.sn2").coupling == "rate"
    (warning,) = res.graph.meta["warnings"]
    assert "layer1.0.sn2" in warning and "mirror-padded" in warning


def test_rate_rule_equals_the_closed_form(tmp_path):
    sd = _resnet19_sd([3, 5, 5, 2, 2, 6, 6, 4])
    g = paper_to_ir({"model": sd, "args": _args()}, input_shape=(3, 8, 8), coupling="rate")
    from pseudosnn.compiler import ir, pipeline

    res = pipeline.run(g, verify=True)
    x = np.random.default_rng(2).normal(0, 1, (2, 3, 8, 8))
    np.testing.assert_allclose(reference.evaluate(res.graph, x).output,
                               ir.evaluate(g, x).output, atol=1e-9)
    np.testing.assert_allclose(_simulate(res.graph, x), ir.evaluate(g, x).output, atol=1e-9)


def _vgg11_sd(seed=0, w=4):
    """vgg11 layout (models/noisy/vgg.py): feature.{i}.0 conv (with bias), feature.{i+1}.0
    BN, feature.{i+2} neuron; pools take one index; classifier.0.0 Linear."""
    sd, idx, cin = _SD(seed), 0, 3
    for item in [w, "A", w, w, "A", w, w, "A", w, "A", w, w, "AA"]:
        if isinstance(item, str):
            idx += 1
            continue
        sd.conv(f"feature.{idx}.0", cin, item, 3, bias=True)
        sd.bn(f"feature.{idx + 1}.0", item)
        sd.neuron(f"feature.{idx + 2}", 1 + (idx * 7) % MAX_T)
        cin, idx = item, idx + 3
    sd.linear("classifier.0.0", cin, 10)
    return dict(sd)


def test_vgg11_layout_compiles_and_matches_rate_ir(tmp_path):
    sd = _vgg11_sd()
    path = tmp_path / "vgg.pth"
    torch.save({"model": sd, "args": _args("vgg11")}, path)
    res = CliRunner().invoke(main, ["compile", str(path), "-o", str(tmp_path / "v"),
                                    "--coupling", "rate", "--verify"])
    assert res.exit_code == 0, res.output
    graph = artifact.load(tmp_path / "v")
    assert len(graph.populations) == 8 and graph.input.shape == (3, 32, 32)
    assert all(p.coupling == "rate" for p in graph.populations)


def test_paper_state_dict_mismatch_is_listed():
    sd = _resnet19_sd([4] * 8)
    sd["layer9.0.weird"] = sd.pop("layer2.1.conv2.0.weight")
    with pytest.raises(FrontendError, match="missing key 'layer2.1.conv2.0.weight'.*"
                                            "layer9.0.weird"):
        paper_to_ir({"model": sd, "args": _args()}, input_shape=(3, 8, 8))


def test_bottleneck_sew_is_refused_by_name():
    with pytest.raises(FrontendError, match="'sew_resnet50' is not supported"):
        paper_to_ir({"model": {}, "args": _args("sew_resnet50")})


SEW_DEFAULT = (1, 16)  # PseudoNeuron defaults, kept by the paper's later SEW blocks


def _sew20_sd(T=4, c=(3, 4, 6), seed=3):
    """sew_resnet20's layout (models/noisy/sew_resnet.py, CIFAR ResNet20 with ADD): conv1,
    bn1, sn1, layer{1,2,3}.{0,1,2} with downsample.0.{0,1} + downsample.1 where the shape
    changes, fc.0.0. Blocks after a stage's first keep PseudoNeuron's default T range."""
    sd = _SD(seed)
    sd.conv("conv1", 3, c[0], 3)
    sd.bn("bn1", c[0])
    sd.neuron("sn1", T)
    cin = c[0]
    for layer, cout in enumerate(c, start=1):
        for j in range(3):
            p = f"layer{layer}.{j}"
            lo, hi = (MIN_T, MAX_T) if j == 0 else SEW_DEFAULT
            sd.conv(f"{p}.conv1.0", cin, cout, 3)
            sd.bn(f"{p}.conv1.1", cout)
            sd.conv(f"{p}.conv2.0", cout, cout, 3)
            sd.bn(f"{p}.conv2.1", cout)
            for name in ("sn1", "sn2"):
                sd.neuron(f"{p}.{name}", T)
                sd[f"{p}.{name}.logit"] = torch.tensor(math.log((T - lo) / (hi - T)))
            if j == 0 and cin != cout:
                sd.conv(f"{p}.downsample.0.0", cin, cout, 1)
                sd.bn(f"{p}.downsample.0.1", cout)
                sd.neuron(f"{p}.downsample.1", T)
            cin = cout
    sd.linear("fc.0.0", cin, 10)
    return dict(sd)


def _sew20_forward(sd, x):
    def neuron(p, z, rng=(MIN_T, MAX_T)):
        lo, hi = rng
        T = int(torch.round(lo + (hi - lo) * torch.sigmoid(sd[f"{p}.logit"].double())))
        z = z * sd[f"{p}.scale"].double() + sd[f"{p}.bias"].double()
        drive = z if z.shape[0] == T else z.mean(0, keepdim=True).expand(T, *z.shape[1:])
        v, out = torch.zeros_like(drive[0]), []
        for t in range(T):
            v = v + drive[t]
            s = (v + 0.5 - 1.0 >= 0).double()
            v, out = v - s, [*out, s]
        return torch.stack(out)

    out = _bn(sd, "bn1", _conv(sd, "conv1", x.unsqueeze(0)))
    out = neuron("sn1", out)
    for layer in (1, 2, 3):
        for j in range(3):
            p = f"layer{layer}.{j}"
            rng = (MIN_T, MAX_T) if j == 0 else SEW_DEFAULT
            down = f"{p}.downsample.0.0.weight" in sd
            stride = 2 if down and layer > 1 else 1
            h = neuron(f"{p}.sn1", _bn(sd, f"{p}.conv1.1", _conv(sd, f"{p}.conv1.0", out,
                                                                  stride)), rng)
            h = neuron(f"{p}.sn2", _bn(sd, f"{p}.conv2.1", _conv(sd, f"{p}.conv2.0", h)), rng)
            skip = out
            if down:
                skip = neuron(f"{p}.downsample.1", _bn(sd, f"{p}.downsample.0.1", _conv(
                    sd, f"{p}.downsample.0.0", out, stride, 0)))
            out = _pad_and_add(h, skip)
    out = _seq(lambda z: z.mean((2, 3)), out)
    return _seq(lambda z: F.linear(z, sd["fc.0.0.weight"].double(),
                                   sd["fc.0.0.bias"].double()), out).mean(0)


def test_sew_resnet20_layout_matches_the_papers_eval():
    from pseudosnn.compiler import pipeline

    sd = _sew20_sd()
    g = paper_to_ir({"model": sd, "args": _args("sew_resnet20")}, input_shape=(3, 8, 8))
    res = pipeline.run(g)
    assert sum(p.coupling == "stream" for p in res.graph.populations) == \
        len(res.graph.populations) - 1  # one T everywhere: stream after the encoder
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)
    np.testing.assert_allclose(_simulate(res.graph, x.numpy()), _sew20_forward(sd, x).numpy(),
                               atol=1e-9)


# --- ImageNet layouts at 64x64: SEW-ResNet-18 (max pool of the stem's spikes) and
# PreAct-ResNet-34 (max pool of the analog stem), models/noisy/{sew,preact}_resnet.py ---
def _maxpool(x):
    return _seq(lambda z: F.max_pool2d(z, 3, 2, 1), x)


def _stages(widths, depths):
    """(layer, block, cin, cout, stride, downsample) of the paper's _make_layer."""
    cin = 64 if widths[0] == 64 else widths[0]
    for layer, (cout, depth) in enumerate(zip(widths, depths, strict=True), start=1):
        for j in range(depth):
            stride = 2 if layer > 1 and j == 0 else 1
            yield layer, j, cin, cout, stride, stride != 1 or cin != cout
            cin = cout


def _sew18_sd(widths, T_stage, T_sn1, seed=11):
    """sew_resnet18's keys (stem conv1 7x7/2, bn1, sn1; layer{1..4}.{0,1} conv1/conv2 +
    sn1/sn2, downsample.0.{0,1} + downsample.1 where the shape changes; fc). Stage s's sn2
    and downsample neurons share ``T_stage[s]`` (the stem's T is stage 1's): the trains
    that pad_and_add sums have one length, so no mirror padding is needed."""
    sd, T1 = _SD(seed), iter(T_sn1)
    sd.conv("conv1", 3, widths[0], 7)
    sd.bn("bn1", widths[0])
    sd.neuron("sn1", T_stage[0])
    for layer, j, cin, cout, _, down in _stages(widths, (2, 2, 2, 2)):
        p = f"layer{layer}.{j}"
        sd.block_convs(p, cin, cout)
        sd.neuron(f"{p}.sn1", next(T1))
        sd.neuron(f"{p}.sn2", T_stage[layer - 1])
        if down:
            sd.conv(f"{p}.downsample.0.0", cin, cout, 1)
            sd.bn(f"{p}.downsample.0.1", cout)
            sd.neuron(f"{p}.downsample.1", T_stage[layer - 1])
    sd.linear("fc", widths[-1], 10)
    return dict(sd)


def _sew18_forward(sd, x):
    """The paper's SEWResNet._forward_impl in eval (ADD connection, pad_and_add)."""
    out = _neuron(sd, "sn1", _bn(sd, "bn1", _conv(sd, "conv1", x.unsqueeze(0), 2)))
    out = _maxpool(out)  # SeqToANNContainer(MaxPool2d(3, 2, 1)): per step, on spikes
    for layer in range(1, 5):
        for j in range(2):
            p = f"layer{layer}.{j}"
            down = f"{p}.downsample.0.0.weight" in sd
            stride = 2 if down and layer > 1 else 1
            h = _neuron(sd, f"{p}.sn1", _bn(sd, f"{p}.conv1.1", _conv(sd, f"{p}.conv1.0", out,
                                                                       stride)))
            h = _neuron(sd, f"{p}.sn2", _bn(sd, f"{p}.conv2.1", _conv(sd, f"{p}.conv2.0", h)))
            identity = out
            if down:
                identity = _neuron(sd, f"{p}.downsample.1", _bn(
                    sd, f"{p}.downsample.0.1", _conv(sd, f"{p}.downsample.0.0", out, stride, 0)))
            out = _pad_and_add(h, identity)
    out = _seq(lambda z: z.mean((2, 3)), out)  # AdaptiveAvgPool2d(1) + flatten(x, 2)
    return F.linear(out.mean(0), sd["fc.weight"].double(), sd["fc.bias"].double())


def _preact34_sd(widths, T_sn2, T_sn1, seed=12):
    """preact_resnet34's keys (conv1 7x7/2 with bias, bn1; layer{1..4}.{j} sn1, conv1.{0,1},
    sn2, conv2.{0,1}, downsample.{0,1} (conv1x1 with bias, BN); fc). Every sn2 has T_sn2:
    the block sums then have one length (the analog stem's 1-step value repeats)."""
    sd, T1 = _SD(seed), iter(T_sn1)
    sd.conv("conv1", 3, widths[0], 7, bias=True)
    sd.bn("bn1", widths[0])
    for layer, j, cin, cout, _, down in _stages(widths, (3, 4, 6, 3)):
        p = f"layer{layer}.{j}"
        sd.neuron(f"{p}.sn1", next(T1))
        sd.block_convs(p, cin, cout, bias=True)
        sd.neuron(f"{p}.sn2", T_sn2)
        if down:
            sd.conv(f"{p}.downsample.0", cin, cout, 1, bias=True)
            sd.bn(f"{p}.downsample.1", cout)
    sd.linear("fc", widths[-1], 10)
    return dict(sd)


def _preact34_forward(sd, x):
    """The paper's PreactSpikingResNet._forward_impl in eval."""
    out = _bn(sd, "bn1", _conv(sd, "conv1", x.unsqueeze(0), 2))
    out = _maxpool(out)  # nn.MaxPool2d(3, 2, 1) on the analog stem, before any neuron
    for layer, depth in enumerate((3, 4, 6, 3), start=1):
        for j in range(depth):
            p = f"layer{layer}.{j}"
            down = f"{p}.downsample.0.weight" in sd
            stride = 2 if down and layer > 1 else 1
            h = _bn(sd, f"{p}.conv1.1", _conv(sd, f"{p}.conv1.0", _neuron(sd, f"{p}.sn1", out),
                                              stride))
            h = _bn(sd, f"{p}.conv2.1", _conv(sd, f"{p}.conv2.0", _neuron(sd, f"{p}.sn2", h)))
            identity = out
            if down:
                identity = _bn(sd, f"{p}.downsample.1",
                               _conv(sd, f"{p}.downsample.0", out, stride, 0))
            out = _pad_and_add(h, identity)
    out = _seq(lambda z: z.mean((2, 3)), out)
    return F.linear(out.mean(0), sd["fc.weight"].double(), sd["fc.bias"].double())


SMALL = (4, 6, 8, 10)  # widths (the paper's are 64, 128, 256, 512)
SEW18_T = dict(T_stage=(4, 3, 5, 2), T_sn1=(4, 6, 3, 3, 5, 7, 2, 4))
PREACT34_T = dict(T_sn2=3, T_sn1=(5, 3, 3, 2, 3, 6, 3, 3, 4, 3, 3, 3, 1, 3, 7, 3))


def _paper_vs_simulator(arch, sd, forward, tmp_path, batch=2):
    """Compile the checkpoint through the CLI at 64x64, simulate, compare with the paper's
    eval forward; returns (max |difference|, graph)."""
    path = tmp_path / f"{arch}.pth"
    torch.save({"model": sd, "args": _args(arch), "epoch": 99}, path)
    res = CliRunner().invoke(main, ["compile", str(path), "-o", str(tmp_path / arch),
                                    "--input-shape", "3,64,64"])
    assert res.exit_code == 0, res.output
    graph = artifact.load(tmp_path / arch)
    x = torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(5),
                    dtype=torch.float64)
    with torch.no_grad():
        expected = forward(sd, x).numpy()
    from pseudosnn.backends.registry import get_backend

    run = get_backend("numpy").run(graph, x.numpy())
    spikes = sum(int(n.sum()) for n in run.counts.values())
    assert spikes > 0 and np.ptp(expected) > 0.1  # not a vacuous comparison
    return float(np.abs(run.output - expected).max()), graph


def _sew18_checks(graph, widths):
    (pool,) = graph.pools  # the stem's 3x3/2 max pool of spikes, an event source
    assert (pool.source, pool.shape[1:], pool.kernel) == ("sn1", (16, 16), (3, 3))
    stream = {p.name for p in graph.populations if p.coupling == "stream"}
    # T matches the incoming train: stream (layer1.0.sn1 reads the pooled train, T 4 = 4)
    assert {"layer1.0.sn1", "layer1.0.sn2", "layer2.1.sn1"} <= stream
    assert "layer1.1.sn1" not in stream  # T 6 vs a 4-step train: its time mean


def _preact34_checks(graph, widths):
    stem = graph.input.stem  # conv1 + bn1 + max pool: host side, part of the encoder
    assert stem is not None and stem.shape == (widths[0], 16, 16) and not graph.pools
    assert graph.input.sample_shape == (3, 64, 64)
    stream = {p.name for p in graph.populations if p.coupling == "stream"}
    # the analog stem's 1-step value repeats through a stream window (pad_and_add): a
    # block's sn1 with the sn2 trains' T streams them with that constant current
    assert "layer1.1.sn1" in stream and "layer1.0.sn1" not in stream


IMAGENET_LAYOUTS = {  # state dict, the paper's eval forward, the T chosen, checks
    "sew_resnet18": (_sew18_sd, _sew18_forward, SEW18_T, _sew18_checks),
    "preact_resnet34": (_preact34_sd, _preact34_forward, PREACT34_T, _preact34_checks),
}


@pytest.mark.parametrize("widths", [SMALL, pytest.param((64, 128, 256, 512),
                                                        marks=pytest.mark.slow)],
                         ids=["small", "paper-widths"])
@pytest.mark.parametrize("arch", sorted(IMAGENET_LAYOUTS))
def test_imagenet_layout_with_max_pool_stem_matches_the_papers_eval(tmp_path, arch, widths):
    """SEW-ResNet-18 (max pool of the stem's spikes) and PreAct-ResNet-34 (max pool of the
    analog stem) in the paper's layout at 64x64: compiled, simulated, equal to the paper's
    eval forward."""
    make_sd, forward, Ts, checks = IMAGENET_LAYOUTS[arch]
    sd = make_sd(widths, **Ts)
    err, graph = _paper_vs_simulator(arch, sd, forward, tmp_path)
    print(f"\n{arch} {widths} at 64x64: max |simulator - paper eval| = {err:.2e}")
    assert err < 1e-9
    checks(graph, widths)
    assert not graph.meta["warnings"]


def test_dvs_frames_stream_when_T_is_the_frame_count(tmp_path):
    """vggsnn_dvs reads 10 event frames: a first layer with T = 10 streams them one per
    step, with T != 10 it takes their time mean (the paper's rule), on the simulator."""
    for T0, coupling in ((4, "stream"), (3, "rate")):
        sd, idx, cin = _SD(3), 0, 2
        for item in [4, 4, "A", 4, 4, "A", 4, 4, "A", 4, 4, "A"]:
            if isinstance(item, str):
                idx += 1
                continue
            sd.conv(f"feature.{idx}.0", cin, item, 3, bias=True)
            sd.bn(f"feature.{idx + 1}.0", item)
            sd.neuron(f"feature.{idx + 2}", T0 if idx == 0 else 4)
            cin, idx = item, idx + 3
        sd.linear("classifier.0.0", cin * 9, 10)
        g = paper_to_ir({"model": dict(sd), "args": _args("vggsnn_dvs")},
                        input_shape=(4, 2, 48, 48))
        from pseudosnn.compiler import pipeline

        graph = pipeline.run(g).graph
        assert graph.input.frames == 4 and graph.population("feature.2").coupling == coupling
        x = torch.rand(2, 4, 2, 48, 48, generator=torch.Generator().manual_seed(0),
                       dtype=torch.float64)
        out = x.transpose(0, 1)  # the paper's permute(1, 0, 2, 3, 4): [T, B, C, H, W]
        idx = 0
        for item in [4, 4, "A", 4, 4, "A", 4, 4, "A", 4, 4, "A"]:
            if isinstance(item, str):
                out, idx = _seq(lambda z: F.avg_pool2d(z, 2), out), idx + 1
                continue
            out = _neuron(sd, f"feature.{idx + 2}", _bn(sd, f"feature.{idx + 1}.0", _conv(
                sd, f"feature.{idx}.0", out)))
            idx += 3
        w, b = sd["classifier.0.0.weight"].double(), sd["classifier.0.0.bias"].double()
        out = _seq(lambda z, w=w, b=b: F.linear(z.flatten(1), w, b), out).mean(0)
        np.testing.assert_allclose(_simulate(graph, x.numpy()), out.numpy(), atol=1e-9)
