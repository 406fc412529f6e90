"""Torch model (the zoo's walkable structure, see :mod:`pseudosnn.models`) -> IR.

Walks ``model.body`` in order and ``model.readout.fc``: ``SeqToANN`` runs become linear IR
nodes, neurons become ``Neuron`` nodes from their ``deploy_spec()`` (the deployed eval
semantics), residual blocks become ``Add`` nodes, a ``SpikePool`` a neuron and a
``SpikeMaxPool``, a ``MaxPool2d`` of currents an analog ``MaxPool`` (the lowering keeps it
only in the encoder). Event frames ``(T, C, H, W)`` give ``meta["frames"] = T``.
``AdaptiveAvgPool2d`` becomes a global or an ordinary average pooling when its windows are
uniform
(:func:`ir.adaptive_pool_window`). The IR's value is the rate-equivalent network: equal to
the model's eval forward when its neurons use the rate rule (``eval_rule="rate"``,
residual ``mode="mean"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from pseudosnn.compiler import ir
from pseudosnn.compiler.onnx_io import unsupported
from pseudosnn.compiler.spiking.semantics import Dynamics
from torch import nn

from pseudosnn.errors import PseudoSNNError


class FrontendError(PseudoSNNError, ValueError):
    """A model or checkpoint the compiler cannot read (names the problem and the fix)."""


def _np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().double().numpy()
    return np.asarray(t, dtype=np.float64)


@dataclass
class _Walker:
    input_shape: tuple[int, ...]
    max_timesteps: int | None = None
    nodes: list[ir.Node] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)  # note -> layers

    def __post_init__(self):
        self.shapes[ir.INPUT] = tuple(self.input_shape)

    def emit(self, node: ir.Node) -> str:
        self.shapes[node.name] = ir.node_shape(node, [self.shapes[i] for i in node.inputs])
        self.nodes.append(node)
        return node.name

    # --- layers ----------------------------------------------------------------------
    def layer(self, m: nn.Module, name: str, x: str) -> str:
        if isinstance(m, nn.Conv2d):
            if m.dilation != (1, 1) or isinstance(m.padding, str) or m.padding_mode != "zeros":
                raise unsupported(f"Conv2d with dilation/{m.padding_mode} padding", name)
            return self.emit(ir.conv(name, x, _np(m.weight), None if m.bias is None
                                     else _np(m.bias), m.stride, m.padding, m.groups))
        if isinstance(m, nn.Linear):
            return self.emit(ir.gemm(name, x, _np(m.weight), None if m.bias is None
                                     else _np(m.bias)))
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            if m.running_mean is None:
                raise FrontendError(f"BatchNorm {name!r} has no running statistics "
                                    "(track_running_stats=False); it cannot be folded")
            c = m.num_features
            gamma = _np(m.weight) if m.affine else np.ones(c)
            beta = _np(m.bias) if m.affine else np.zeros(c)
            return self.emit(ir.Node(name, "BatchNorm", (x,), attrs={"eps": float(m.eps)},
                                     params={"gamma": gamma, "beta": beta,
                                             "mean": _np(m.running_mean),
                                             "var": _np(m.running_var)}))
        if isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or m.divisor_override or (not m.count_include_pad and m.padding):
                raise unsupported("AvgPool2d with ceil_mode/divisor_override/"
                                  "count_include_pad=False", name)
            def pair(v):
                return tuple(v) if isinstance(v, tuple | list) else (v, v)

            k = pair(m.kernel_size)
            return self.emit(ir.Node(name, "AvgPool", (x,), attrs={
                "kernel": k, "stride": pair(m.stride or k), "padding": pair(m.padding)}))
        if isinstance(m, nn.MaxPool2d):
            return self.max_pool(m, name, x)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            c, h, w = self.shapes[x]
            out = m.output_size if isinstance(m.output_size, tuple | list) else \
                (m.output_size, m.output_size)
            oh, ow = (h if out[0] is None else out[0]), (w if out[1] is None else out[1])
            if (oh, ow) == (1, 1):
                return self.emit(ir.Node(name, "GlobalAvgPool", (x,)))
            wy, wx = ir.adaptive_pool_window(h, oh), ir.adaptive_pool_window(w, ow)
            if wy is None or wx is None:
                raise unsupported(f"AdaptiveAvgPool2d({oh}x{ow}) on a {h}x{w} map (windows of "
                                  "unequal size; choose an input size that divides evenly)", name)
            return self.emit(ir.Node(name, "AvgPool", (x,), attrs={
                "kernel": (wy[0], wx[0]), "stride": (wy[1], wx[1]), "padding": (0, 0)}))
        if isinstance(m, nn.Flatten):
            return self.emit(ir.Node(name, "Flatten", (x,)))
        if isinstance(m, nn.Identity | nn.Dropout):
            return x
        if isinstance(m, nn.Sequential):
            for sub_name, sub in m.named_children():
                x = self.layer(sub, f"{name}.{sub_name}", x)
            return x
        from pseudosnn.neurons.base import SpikingNeuron

        if isinstance(m, SpikingNeuron):
            return self.neuron(m, name, x)
        return self.block(m, name, x)

    def max_pool(self, m: nn.MaxPool2d, name: str, x: str, spikes: bool = False) -> str:
        """A max pool of spikes (``spikes``: a ``SpikePool``; or of a stream neuron's
        trains, per step); of a rate neuron's rates it has no event form; of currents it
        is analog (the lowering keeps it only in the encoder)."""
        def pair(v):
            return tuple(v) if isinstance(v, tuple | list) else (v, v)

        if pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
            raise unsupported("MaxPool2d with dilation/ceil_mode/return_indices (the event "
                              "form pools windows of dilation 1 with ceil_mode=False)", name)
        src = next((n for n in self.nodes if n.name == x), None)
        op = "SpikeMaxPool" if spikes else "MaxPool"
        if src is not None and src.op == "Neuron" and not spikes:
            if src.attrs["coupling"] != "stream":
                raise FrontendError(
                    f"{name!r} max-pools the rates of neuron {src.name!r}: the max of rates "
                    "has no event form; pool its spikes instead (wrap the neuron and the pool "
                    "in pseudosnn.models.SpikePool) or use average pooling")
            op = "SpikeMaxPool"
        k = pair(m.kernel_size)
        return self.emit(ir.Node(name, op, (x,), attrs={
            "kernel": k, "stride": pair(m.stride or k), "padding": pair(m.padding)}))

    def neuron(self, m, name: str, x: str) -> str:
        from pseudosnn.neurons.base import NotDeployable

        try:
            spec = m.deploy_spec()
        except NotDeployable as exc:
            raise FrontendError(f"neuron {name!r} ({type(m).__name__}) cannot be compiled: "
                                f"{exc}") from exc
        shape = self.shapes[x]
        T = _np(spec.timesteps)
        if not np.all(np.round(T) == T):
            raise FrontendError(f"neuron {name!r}: T must be integers, got {T}")
        T = np.round(T).astype(np.int64)
        hi = self.max_timesteps or getattr(m, "max_T", None)
        if T.min() < 1 or (hi is not None and T.max() > hi):
            raise FrontendError(f"neuron {name!r}: T outside 1..{hi} (values "
                                f"{T.min()}..{T.max()}); the checkpoint is corrupt or was "
                                "trained with other min_T/max_T")
        T = _as_feature_param(T, shape, f"neuron {name!r} T")
        scale = _as_feature_param(_np(spec.scale), shape, f"neuron {name!r} scale")
        bias = _as_feature_param(_np(spec.bias), shape, f"neuron {name!r} bias")
        dyn = Dynamics(du=float(spec.du), dv=float(spec.dv), reset=spec.reset,
                       v_reset=float(spec.v_reset), fire=spec.fire)
        problem = dyn.problem(float(spec.threshold), float(spec.v0))
        if problem:
            raise FrontendError(f"neuron {name!r} ({type(m).__name__}) cannot be compiled: "
                                f"{problem}")
        if spec.note:
            self.notes.setdefault(spec.note, []).append(name)
        return self.emit(ir.neuron(
            name, x, T, threshold=float(spec.threshold), v0=float(spec.v0), scale=scale,
            bias=bias, out_scale=float(spec.out_scale), coupling=spec.coupling,
            reset=spec.reset, dynamics=dyn))

    def block(self, m: nn.Module, name: str, x: str) -> str:
        from pseudosnn.models.blocks import BasicBlock, PreActBlock, SEWBlock
        from pseudosnn.models.layers import SpikePool

        def sub(attr: str, v: str) -> str:
            return self.layer(getattr(m, attr), f"{name}.{attr}", v)

        def add(a: str, b: str) -> str:
            # mode="mirror" differs from a sum only for trains of different lengths (the
            # paper's rule); the schedule pass then refuses stream coupling and warns
            return self.emit(ir.Node(f"{name}.add", "Add", (a, b)))

        if isinstance(m, BasicBlock):
            main = sub("conv2", sub("sn1", sub("conv1", x)))
            skip = x if m.shortcut is None else sub("shortcut", x)
            return sub("sn2", add(main, skip))
        if isinstance(m, SEWBlock):
            main = sub("sn2", sub("conv2", sub("sn1", sub("conv1", x))))
            skip = x if m.shortcut is None else sub("shortcut_sn", sub("shortcut", x))
            return add(main, skip)
        if isinstance(m, SpikePool):
            return self.max_pool(m.pool, f"{name}.pool", sub("sn", x), spikes=True)
        if isinstance(m, PreActBlock):
            main = sub("conv2", sub("sn2", sub("conv1", sub("sn1", x))))
            skip = x if m.shortcut is None else sub("shortcut", x)
            return add(main, skip)
        raise unsupported(type(m).__name__, name)


def _as_feature_param(v: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Make a per-layer/channel/neuron parameter broadcast against the feature shape
    (a per-channel ``(C,)`` vector of a ``(C, H, W)`` layer becomes ``(C, 1, 1)``)."""
    if v.ndim == 1 and len(shape) == 3 and v.shape[0] == shape[0] and v.shape[0] != shape[2]:
        v = v.reshape(-1, 1, 1)
    try:
        np.broadcast_to(v, shape)
    except ValueError as exc:
        raise FrontendError(f"{what} of shape {v.shape} does not fit the layer {shape}") from exc
    return v


def model_to_ir(model: nn.Module, input_shape: tuple[int, ...] | None = None,
                max_timesteps: int | None = None) -> ir.Graph:
    """The zoo model's rate-equivalent network as IR (the model is not modified)."""
    body, readout = getattr(model, "body", None), getattr(model, "readout", None)
    if body is None or readout is None or not hasattr(readout, "fc"):
        raise FrontendError(
            f"{type(model).__name__} is not a zoo SpikingNetwork (needs .body and .readout.fc; "
            "see pseudosnn.models); build it with pseudosnn.models.build_model")
    shape = tuple(input_shape or model.input_shape)
    meta = {"arch": str(getattr(model, "arch", type(model).__name__)),
            "residual_mode": str(getattr(model, "residual_mode", "mean"))}
    if len(shape) == 4:  # event frames (T, C, H, W): one per step, or their time mean
        shape, meta["frames"] = shape[1:], int(shape[0])
    w = _Walker(shape, max_timesteps)
    x = ir.INPUT
    with torch.no_grad():
        for name, m in body.named_children():
            x = w.layer(m, f"body.{name}", x)
        out = w.layer(readout.fc, "readout.fc", x)
    if w.notes:  # the family's training forward is not the deployed neuron
        meta["deploy_notes"] = [{"layers": layers, "note": note}
                                for note, layers in w.notes.items()]
    graph = ir.Graph(shape, tuple(w.nodes), out, meta=meta)
    ir.check(graph, max_timesteps)
    return graph
