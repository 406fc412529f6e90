"""The compiler's typed IR: a small graph of rate-level operators (torch-free).

A :class:`Graph` is one analog input (``"input"``, per-sample shape), a tuple of
:class:`Node` s in topological order, and the name of the output node. Every node has one
output, named like the node. Values are per-sample tensors (batch first at run time).

Operators and what they compute (``x`` the input value, batch omitted):

=================  =========================================================================
``Conv``           ``W ⋆ x + b`` (cross-correlation; attrs ``stride``, ``padding``, ``groups``)
``Gemm``           ``W @ flatten(x) + b`` (``W`` is ``(out, in)``; a non-flat ``x`` is
                   flattened in C order)
``BatchNorm``      ``γ·(x − μ)/sqrt(σ² + eps) + β`` per channel
``AvgPool``        mean over ``kernel`` windows (``stride``, zero ``padding`` counted)
``GlobalAvgPool``  mean over the spatial axes, shape ``(C, 1, 1)``
``Flatten``        C-order flatten
``Add``            sum of all inputs (residual additions)
``MaxPool``        max over ``kernel`` windows (``stride``; ``padding`` taps are ``-inf``) of an
                   *analog* value (only in the encoder, before any neuron)
``Neuron``         ``out_scale · n/T`` with ``n = clip(floor((T·(scale·x + bias) + v0)/θ), 0, T)``
                   (a rate-coupled integrate-and-fire population; params ``timesteps``,
                   ``scale``, ``bias``; attrs ``threshold``, ``v0``, ``out_scale``,
                   ``coupling``, ``reset``; a leaky or hard-reset neuron also has attrs
                   ``du``, ``dv``, ``v_reset``, ``fire`` and its ``n`` is the count of the
                   constant current stepped, :func:`.spiking.semantics.constant_current_counts`)
``SpikeMaxPool``   max pooling of a ``Neuron``'s *spikes*, step by step (an OR over each
                   window): ``out_scale · m/T`` with ``m = Σ_t OR_window s_t`` over the
                   neuron's train of its constant current (attrs ``kernel``, ``stride``,
                   ``padding``; :func:`.spiking.semantics.constant_current_train`)
=================  =========================================================================

A ``Conv`` or ``Gemm`` may keep the trained weight ``W`` factorised (the passes fold into
the factors, not into ``W``): params ``in_scale`` (broadcasts to the input), ``out_scale``
(per output channel/row) and attr ``pool`` (a zero-padded *sum* pool ``(kernel, stride,
padding)`` on the input) make it ``out_scale ⊙ (W ⋆ sumpool(in_scale ⊙ x)) + b``;
:func:`plain` composes such a node into one weight.

Nodes are frozen dataclasses; a pass builds new nodes with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.semantics import (
    Dynamics,
    constant_current_counts,
    constant_current_train,
)

from pseudosnn.errors import PseudoSNNError

INPUT = "input"
LINEAR_OPS = ("Conv", "Gemm", "BatchNorm", "AvgPool", "GlobalAvgPool", "Flatten", "Add")
POOL_OPS = ("MaxPool", "SpikeMaxPool")
OPS = (*LINEAR_OPS, *POOL_OPS, "Neuron")


DEFAULT_MAX_TIMESTEPS = 1024
"""Largest T compiled without an explicit ``max_timesteps`` (``--max-timesteps``). The
paper's networks use at most 20 steps and ANN-to-SNN conversion evaluations report up to
about a thousand; a larger T is almost always a corrupt or mis-configured checkpoint (one
claiming ``max_T = 1e6`` compiles to a network that steps for minutes per sample)."""


class IRError(PseudoSNNError, ValueError):
    """The IR breaks one of its invariants (names the node and the problem)."""


@dataclass(frozen=True, eq=False)
class Node:
    """One operator. ``inputs`` name producing nodes (or :data:`INPUT`)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def param(self, key: str) -> np.ndarray | None:
        v = self.params.get(key)
        return None if v is None else np.asarray(v)


@dataclass(frozen=True, eq=False)
class Graph:
    input_shape: tuple[int, ...]
    nodes: tuple[Node, ...]
    output: str
    meta: dict = field(default_factory=dict)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no IR node named {name!r}")

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def neurons(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "Neuron"]

    def with_nodes(self, nodes: Iterable[Node], output: str | None = None) -> Graph:
        return replace(self, nodes=tuple(nodes), output=self.output if output is None else output)


# --- shapes -------------------------------------------------------------------------------
def _pool_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def node_shape(node: Node, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Per-sample output shape of ``node`` given its input shapes."""
    x = in_shapes[0]
    op = node.op
    if op in ("Conv", "Gemm") and node.attrs.get("pool") is not None:
        (kh, kw), (sh, sw), (ph, pw) = node.attrs["pool"]
        x = (x[0], _pool_out(x[1], kh, sh, ph), _pool_out(x[2], kw, sw, pw))
    if op == "Conv":
        w = node.params["weight"]
        if len(x) != 3 or w.shape[1] * node.attrs.get("groups", 1) != x[0]:
            raise IRError(f"Conv {node.name!r}: weight {w.shape} does not fit input {x}")
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        return (w.shape[0], _pool_out(x[1], w.shape[2], sh, ph),
                _pool_out(x[2], w.shape[3], sw, pw))
    if op == "Gemm":
        w = node.params["weight"]
        if w.shape[1] != int(np.prod(x)):
            raise IRError(f"Gemm {node.name!r}: weight {w.shape} does not fit input {x}")
        return (w.shape[0],)
    if op in ("BatchNorm", "Neuron"):
        return x
    if op in ("AvgPool", *POOL_OPS):
        (kh, kw), (sh, sw), (ph, pw) = (node.attrs[k] for k in ("kernel", "stride", "padding"))
        if len(x) != 3:
            raise IRError(f"{op} {node.name!r}: input {x} is not (C, H, W)")
        return (x[0], _pool_out(x[1], kh, sh, ph), _pool_out(x[2], kw, sw, pw))
    if op == "GlobalAvgPool":
        return (x[0], 1, 1)
    if op == "Flatten":
        return (int(np.prod(x)),)
    if op == "Add":
        if any(s != x for s in in_shapes):
            raise IRError(f"Add {node.name!r}: input shapes differ {in_shapes}")
        return x
    raise IRError(f"node {node.name!r}: unknown op {op!r}; IR ops are {', '.join(OPS)}")


def infer_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {INPUT: tuple(graph.input_shape)}
    for n in graph.nodes:
        missing = [i for i in n.inputs if i not in shapes]
        if missing:
            raise IRError(f"node {n.name!r} reads {missing} before they are computed")
        shapes[n.name] = tuple(int(d) for d in node_shape(n, [shapes[i] for i in n.inputs]))
    return shapes


def check(graph: Graph, max_timesteps: int | None = None) -> dict[str, tuple[int, ...]]:
    """Invariants: unique names, topological order, known ops, shapes fit, finite
    parameters, integer ``T`` in ``1..max_timesteps``, the output exists."""
    names = [n.name for n in graph.nodes]
    if len(set(names)) != len(names) or INPUT in names:
        raise IRError(f"IR node names must be unique and not {INPUT!r}")
    shapes = infer_shapes(graph)
    if graph.output not in shapes:
        raise IRError(f"the IR output {graph.output!r} is not a node")
    for n in graph.nodes:
        for key, v in n.params.items():
            if not np.all(np.isfinite(np.asarray(v, dtype=np.float64))):
                raise IRError(f"node {n.name!r}: parameter {key!r} has NaN or Inf values; "
                              "the checkpoint is corrupt or training diverged")
        if n.op == "Neuron":
            T = np.asarray(n.params["timesteps"])
            check_timesteps(f"neuron {n.name!r}", T, max_timesteps)
            try:
                np.broadcast_to(T, shapes[n.name])
            except ValueError as exc:
                raise IRError(f"neuron {n.name!r}: T of shape {T.shape} does not broadcast "
                              f"to {shapes[n.name]}") from exc
            problem = neuron_dynamics(n).problem(n.attrs["threshold"], n.attrs["v0"])
            if problem:
                raise IRError(f"neuron {n.name!r}: {problem}")
        if n.op in POOL_OPS:
            _check_pool(graph, n, shapes)
    return shapes


def check_timesteps(what: str, T: np.ndarray, max_timesteps: int | None = None) -> None:
    """``T`` must be integers in ``1..max_timesteps`` (default :data:`DEFAULT_MAX_TIMESTEPS`);
    the error names ``what``, the offending T and the fix."""
    T = np.asarray(T)
    if not np.issubdtype(T.dtype, np.integer) or T.size == 0 or T.min() < 1:
        raise IRError(f"{what}: T must be integers >= 1, got {T.dtype} values"
                      + (f" in [{T.min()}, {T.max()}]" if T.size else " (none)"))
    hi = DEFAULT_MAX_TIMESTEPS if max_timesteps is None else max_timesteps
    if T.max() > hi:
        fix = (f"if that many steps are intended, pass --max-timesteps {T.max()}"
               if max_timesteps is None else "raise --max-timesteps, or retrain with a "
               "smaller max_T")
        raise IRError(f"{what}: T = {T.max()} is above the limit of {hi} steps (each sample "
                      f"would take at least {T.max()} simulation steps); {fix}")


def _check_pool(graph: Graph, n: Node, shapes) -> None:
    """A max pool's window fits (PyTorch's rule: padding <= kernel/2); a spike max pool
    reads a neuron whose T is one per layer or per channel (a window must not mix trains
    of different lengths)."""
    if any(2 * p > k for p, k in zip(n.attrs["padding"], n.attrs["kernel"], strict=True)):
        raise IRError(f"{n.op} {n.name!r}: padding {n.attrs['padding']} exceeds half the "
                      f"kernel {n.attrs['kernel']}")
    if n.op != "SpikeMaxPool":
        return
    src = next((m for m in graph.nodes if m.name == n.inputs[0]), None)
    if src is None or src.op != "Neuron":
        raise IRError(f"SpikeMaxPool {n.name!r} must read a neuron's spikes; max pooling "
                      "of a sum of spike trains (or of currents) is not binary")
    T = np.broadcast_to(src.params["timesteps"], shapes[src.name])
    if np.any(T[:, :1, :1] != T):
        raise IRError(f"SpikeMaxPool {n.name!r}: neuron {src.name!r} has per-neuron T; a "
                      "pooling window would mix trains of different lengths (use per-layer "
                      "or per-channel T)")
    if src.attrs.get("out_scale", 1.0) <= 0:
        raise IRError(f"SpikeMaxPool {n.name!r}: neuron {src.name!r} has a non-positive "
                      "spike amplitude; the max of its events is not an OR")


def trained_layers(graph: Graph) -> list[counting.Layer]:
    """The trained network's layers as the counting module sees them (the ANN baseline
    is counted on these, before any pass fuses them), with the neurons each reads and
    feeds (:func:`signal_routes`)."""
    shapes = infer_shapes(graph)
    reads, feeds = signal_routes(graph)
    layers = []
    for n in graph.nodes:
        x, y = shapes[n.inputs[0]], shapes[n.name]
        route = {"reads": tuple(sorted(reads[n.name])), "feeds": feeds[n.name]}
        if n.op == "Conv":
            w = n.params["weight"]
            layers.append(counting.Layer(
                n.name, "conv", x, y, kernel=tuple(int(k) for k in w.shape[2:]),
                stride=tuple(n.attrs["stride"]), padding=tuple(n.attrs["padding"]),
                groups=int(n.attrs.get("groups", 1)), **route))
        elif n.op == "Gemm":
            layers.append(counting.Layer(n.name, "linear", x, y, **route))
        elif n.op in ("AvgPool", "GlobalAvgPool", *POOL_OPS):
            k, s, p = ((tuple(x[1:]), tuple(x[1:]), (0, 0)) if n.op == "GlobalAvgPool" else
                       (n.attrs["kernel"], n.attrs["stride"], n.attrs["padding"]))
            op = "avgpool" if "Avg" in n.op else "maxpool"
            layers.append(counting.Layer(n.name, op, x, y, kernel=tuple(k),
                                         stride=tuple(s), padding=tuple(p), **route))
        elif n.op == "Add":
            layers.append(counting.Layer(n.name, "add", x, y, terms=len(n.inputs), **route))
    return layers


def signal_routes(graph: Graph) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Per node: the neurons (or :data:`INPUT`) whose outputs its input is made of through
    pooling, flatten, BatchNorm and sums only (empty when a Conv or Gemm sum is part of
    it: an accumulated value), and the first neuron it drives through linear ops ("" for
    the output)."""
    carries: dict[str, set[str]] = {INPUT: {INPUT}}
    reads: dict[str, set[str]] = {}
    for n in graph.nodes:
        parts = [carries[i] for i in n.inputs]
        reads[n.name] = set().union(*parts) if all(parts) else set()
        carries[n.name] = {n.name} if n.op == "Neuron" else set() \
            if n.op in ("Conv", "Gemm") else reads[n.name]
    feeds: dict[str, str] = {}
    for n in reversed(graph.nodes):
        consumers = [c for c in graph.nodes if n.name in c.inputs]
        first = consumers[0] if consumers and n.name != graph.output else None
        feeds[n.name] = "" if first is None else first.name if first.op == "Neuron" \
            else feeds[first.name]
    return reads, feeds


# --- rate-level evaluation (numpy, float64) -----------------------------------------------
@dataclass
class Evaluation:
    values: dict[str, np.ndarray]  # node -> output value (B, *shape)
    counts: dict[str, np.ndarray]  # neuron -> spike counts n (B, *shape), int64

    @property
    def output(self) -> np.ndarray:
        return self.values["__output__"]


def neuron_current(node: Node, x: np.ndarray) -> np.ndarray:
    """The constant current ``c = scale·x + bias`` a ``Neuron`` node integrates."""
    return np.asarray(node.params.get("scale", 1.0)) * x + np.asarray(node.params.get("bias", 0.0))


def neuron_dynamics(node: Node) -> Dynamics:
    """The ``Neuron`` node's membrane dynamics (integrate-and-fire unless its attrs say)."""
    a = node.attrs
    return Dynamics(du=float(a.get("du", 1.0)), dv=float(a.get("dv", 0.0)),
                    reset=a.get("reset", "soft"), v_reset=float(a.get("v_reset", 0.0)),
                    fire=a.get("fire", ">="))


def neuron_counts(node: Node, x: np.ndarray) -> np.ndarray:
    """Spike counts of a ``Neuron`` node on input ``x``: its current held constant for its
    ``T`` steps (:func:`.spiking.semantics.constant_current_counts`)."""
    return constant_current_counts(neuron_current(node, x), node.params["timesteps"],
                                   node.attrs["threshold"], node.attrs["v0"],
                                   neuron_dynamics(node))


def spike_pool_counts(pool: Node, neuron: Node, x: np.ndarray) -> np.ndarray:
    """``m = Σ_t OR_window s_t`` of a ``SpikeMaxPool`` over its neuron's train on the
    neuron's input ``x`` (:func:`.spiking.semantics.constant_current_train`)."""
    from pseudosnn.compiler.spiking.synapses import max_pool

    train = constant_current_train(neuron_current(neuron, x), neuron.params["timesteps"],
                                   neuron.attrs["threshold"], neuron.attrs["v0"],
                                   neuron_dynamics(neuron))
    a = pool.attrs
    return sum(max_pool(s, a["kernel"], a["stride"], a["padding"], pad_value=False)
               for s in train).astype(np.int64)


def apply_node(node: Node, xs: list[np.ndarray]) -> np.ndarray:
    """Apply one linear operator to batched float64 inputs (Neuron excluded)."""
    from pseudosnn.compiler.spiking.synapses import conv2d, max_pool, sum_pool

    x = xs[0]
    op, a, p = node.op, node.attrs, node.params
    if op in ("Conv", "Gemm"):
        if p.get("in_scale") is not None:
            x = x * np.asarray(p["in_scale"])
        if a.get("pool") is not None:
            x = sum_pool(np.asarray(x, np.float64), a["pool"])
        w = np.asarray(p["weight"], np.float64)
        if op == "Conv":
            y = conv2d(x, w, tuple(a["stride"]), tuple(a["padding"]), a.get("groups", 1))
        else:
            y = x.reshape(x.shape[0], -1) @ w.T
        sh = (-1,) + (1,) * (y.ndim - 2)
        if p.get("out_scale") is not None:
            y = y * np.asarray(p["out_scale"]).reshape(sh)
        return y + np.asarray(p["bias"]).reshape(sh) if p.get("bias") is not None else y
    if op == "BatchNorm":
        k = np.asarray(p["gamma"]) / np.sqrt(np.asarray(p["var"]) + a["eps"])
        sh = (-1,) + (1,) * (x.ndim - 2)
        return (x - np.asarray(p["mean"]).reshape(sh)) * k.reshape(sh) + \
            np.asarray(p["beta"]).reshape(sh)
    if op == "AvgPool":
        (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
        return win[:, :, ::sh, ::sw].mean(axis=(4, 5))
    if op == "GlobalAvgPool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "MaxPool":
        return max_pool(x, a["kernel"], a["stride"], a["padding"])
    if op == "Flatten":
        return x.reshape(x.shape[0], -1)
    if op == "Add":
        return sum(xs[1:], xs[0])
    raise IRError(f"cannot evaluate op {op!r} of node {node.name!r}")


def evaluate(graph: Graph, x: np.ndarray) -> Evaluation:
    """Rate-level value of every node on a batch ``x`` (``(B, *input_shape)``), float64."""
    values: dict[str, np.ndarray] = {INPUT: np.asarray(x, dtype=np.float64)}
    counts: dict[str, np.ndarray] = {}
    by_name = {n.name: n for n in graph.nodes}
    for n in graph.nodes:
        xs = [values[i] for i in n.inputs]
        if n.op == "SpikeMaxPool":
            src = by_name.get(n.inputs[0])
            if src is None or src.op != "Neuron":
                raise IRError(f"SpikeMaxPool {n.name!r} must read a Neuron (its spikes)")
            cnt = spike_pool_counts(n, src, values[src.inputs[0]])
            counts[n.name] = cnt
            values[n.name] = src.attrs.get("out_scale", 1.0) * cnt / np.asarray(
                src.params["timesteps"], dtype=np.float64)
        elif n.op == "Neuron":
            cnt = neuron_counts(n, xs[0])
            counts[n.name] = cnt
            values[n.name] = n.attrs.get("out_scale", 1.0) * cnt / np.asarray(
                n.params["timesteps"], dtype=np.float64)
        else:
            values[n.name] = apply_node(n, xs)
    values["__output__"] = values[graph.output]
    return Evaluation(values=values, counts=counts)


def neuron(name: str, source: str, timesteps, *, threshold: float = 1.0, v0: float | None = None,
           scale=1.0, bias=0.0, out_scale: float = 1.0, coupling: str = "rate",
           reset: str = "soft", dynamics: Dynamics | None = None) -> Node:
    """Convenience constructor of a ``Neuron`` node (``v0`` defaults to ``θ/2``); the
    attrs of ``dynamics`` (its ``reset`` wins over ``reset``) only when they are not
    integrate-and-fire."""
    attrs = {"threshold": float(threshold), "v0": float(threshold / 2 if v0 is None else v0),
             "out_scale": float(out_scale), "coupling": coupling, "reset": reset}
    if dynamics is not None and not dynamics.is_if:
        attrs.update(du=float(dynamics.du), dv=float(dynamics.dv), reset=dynamics.reset,
                     v_reset=float(dynamics.v_reset), fire=dynamics.fire)
    return Node(name, "Neuron", (source,), attrs=attrs, params={
        "timesteps": np.asarray(timesteps, dtype=np.int64),
        "scale": np.asarray(scale, dtype=np.float64),
        "bias": np.asarray(bias, dtype=np.float64)})


def conv(name: str, source: str, weight, bias=None, stride=(1, 1), padding=(0, 0),
         groups: int = 1) -> Node:
    params = {"weight": np.asarray(weight, dtype=np.float64)}
    if bias is not None:
        params["bias"] = np.asarray(bias, dtype=np.float64)
    return Node(name, "Conv", (source,), attrs={"stride": tuple(stride), "padding": tuple(padding),
                                                "groups": int(groups)}, params=params)


def gemm(name: str, source: str, weight, bias=None) -> Node:
    params = {"weight": np.asarray(weight, dtype=np.float64)}
    if bias is not None:
        params["bias"] = np.asarray(bias, dtype=np.float64)
    return Node(name, "Gemm", (source,), params=params)


def is_factorised(node: Node) -> bool:
    return any(node.params.get(k) is not None for k in ("in_scale", "out_scale")) or \
        node.attrs.get("pool") is not None


def plain(node: Node, in_shape: tuple[int, ...]) -> Node:
    """``node`` (Conv/Gemm) with its factors composed into one weight (the pool fused into
    the kernel, or for a Gemm into the matrix on the unpooled input), so that it reads
    ``W' ⋆ x + b``."""
    from pseudosnn.compiler.spiking.graph import Factors, Projection
    from pseudosnn.compiler.spiking.synapses import compose

    if node.op not in ("Conv", "Gemm") or not is_factorised(node):
        return node
    pool = node.attrs.get("pool")
    (s1, p1) = ((1, 1), (0, 0)) if pool is None else (pool[1], pool[2])
    stride, padding = tuple(node.attrs.get("stride", (1, 1))), tuple(node.attrs.get("padding",
                                                                                      (0, 0)))
    in_scale = node.params.get("in_scale")
    pr = Projection(node.name, INPUT, node.name, "conv" if node.op == "Conv" else "dense",
                    stride=(s1[0] * stride[0], s1[1] * stride[1]),
                    padding=(p1[0] + padding[0] * s1[0], p1[1] + padding[1] * s1[1]),
                    groups=int(node.attrs.get("groups", 1)), delay=0,
                    factors=Factors(np.asarray(node.params["weight"]),
                                    None if in_scale is None else np.asarray(in_scale),
                                    node.param("out_scale"), pool, tuple(in_shape)))
    params = {k: v for k, v in node.params.items() if k not in ("in_scale", "out_scale")}
    attrs = {k: v for k, v in node.attrs.items() if k != "pool"}
    if node.op == "Conv":
        attrs.update(stride=pr.stride, padding=pr.padding)
    return replace(node, attrs=attrs, params={**params, "weight": np.array(compose(pr))})


def adaptive_pool_window(size: int, out: int) -> tuple[int, int] | None:
    """Adaptive average pooling from ``size`` to ``out`` as an ordinary average pooling
    ``(kernel, stride)`` when its windows ``[floor(i·size/out), ceil((i+1)·size/out))`` all
    have one length and a constant stride (e.g. 4 -> 3 is kernel 2, stride 1); else None."""
    starts = [(i * size) // out for i in range(out)]
    ends = [-((-(i + 1) * size) // out) for i in range(out)]
    lengths = {e - s for s, e in zip(starts, ends, strict=True)}
    strides = {b - a for a, b in zip(starts, starts[1:], strict=False)} or {1}
    if len(lengths) != 1 or len(strides) != 1:
        return None
    return lengths.pop(), strides.pop()
