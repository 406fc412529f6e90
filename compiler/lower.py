"""Lowering: canonical IR -> event-driven :class:`~.graph.SpikingGraph` (torch-free).

After the passes every neuron (and the output) reads a sum of Conv/Gemm *terms*, each
reading the analog input or one neuron. Each term becomes a projection:

* from the input: the encoder (``delay = 0``, weights as trained, MACs); an analog
  ``MaxPool`` of the input (or of one conv of it) becomes the input's host-side
  :class:`~.graph.AnalogStem` and the projections that read it encoder projections;
* from a ``SpikeMaxPool`` of neuron ``s``: a :class:`~.graph.SpikePool` node, an event
  source like ``s`` (same ``a_s/T_s`` folding);
* from a neuron ``s`` with output ``a_s·n_s/T_s``: weights act on events, so rate coupling
  folds ``f = a_s/T_s`` into them: a scalar for per-layer ``T``, per input channel for a
  per-channel ``T`` (conv: ``W[:, c]·f_c``; dense: columns), per column for per-neuron ``T``
  into a dense layer, and ``event_scale = f`` for per-neuron ``T`` into a conv (float mode
  only). A population whose neuron asks for stream coupling keeps the request;
  :func:`.passes.schedule.assign_couplings` grants it (and unfolds ``1/T``) or refuses it.

Every projection keeps the trained layer's :class:`~.spiking.graph.Factors` (the term's
weight, pool and scales, ``f`` folded into ``in_scale``); its deployed geometry is the
fused one (pool then conv: stride ``s1·s2``, padding ``p1 + p2·s1``).

The neuron's ``scale`` multiplies the rows, its bias plus the terms' biases (times scale)
become the population bias. Populations keep ``T``, ``θ``, ``v0`` and the neuron's
dynamics (leak ``du``/``dv``, reset, ``v_reset``, comparison); couplings and the schedule
are set by :mod:`.passes.schedule`.
"""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.passes.avgpool_fusion import composition_of
from pseudosnn.compiler.passes.scale_fold import _row_factor
from pseudosnn.compiler.spiking.graph import (
    INPUT,
    AnalogStem,
    Factors,
    InputNode,
    Population,
    Projection,
    Readout,
    SpikePool,
    SpikingGraph,
    read_only,
)

from pseudosnn.errors import PseudoSNNError

READOUT = "readout"


class LoweringError(PseudoSNNError, ValueError):
    """The IR is not in the canonical form the lowering needs (names the node)."""


def _terms(graph: ir.Graph, by_name: dict[str, ir.Node], value: str, target: str) -> list[ir.Node]:
    node = by_name.get(value)
    nodes = [by_name.get(i) for i in node.inputs] if node is not None and node.op == "Add" \
        else [node]
    for t in nodes:
        if t is None or t.op not in ("Conv", "Gemm"):
            what = "the input" if t is None else f"{t.op} node {t.name!r}"
            raise LoweringError(
                f"{target!r} is fed by {what}; after the passes every population and the "
                "readout must read Conv/Gemm projections (is a BatchNorm/pool not preceded "
                "by a conv, or followed by something other than a conv/linear layer?)")
        src = t.inputs[0]
        if src != INPUT and by_name[src].op not in ("Neuron", *ir.POOL_OPS):
            raise LoweringError(f"projection {t.name!r} reads {by_name[src].op} node {src!r}; "
                                "a projection must read the input, a neuron population or "
                                "a max pool")
    return nodes


def _source_factor(src: ir.Node, src_shape, by_name: dict[str, ir.Node]) -> np.ndarray:
    """``a/T`` of the events of ``src`` (a neuron, or the neuron a spike pool reads)."""
    if src.op == "SpikeMaxPool":
        src = by_name[src.inputs[0]]
    a = float(src.attrs.get("out_scale", 1.0))
    T = np.asarray(src.params["timesteps"], dtype=np.float64)
    return np.broadcast_to(a / T, np.broadcast_shapes(T.shape, (1,) * len(src_shape)))


def _stem(graph: ir.Graph, by_name: dict[str, ir.Node]) -> tuple[AnalogStem | None, str | None]:
    """The analog stem (an ``AnalogStem``) and the name of its ``MaxPool`` node, if any: a
    max pool of currents must read the input or one conv of it (it runs host side with
    the encoder); anywhere else it has no event form."""
    pools = [n for n in graph.nodes if n.op == "MaxPool"]
    if not pools:
        return None, None
    node = pools[0]
    src = by_name.get(node.inputs[0])
    if len(pools) > 1 or (src is not None and (src.op != "Conv" or src.inputs[0] != INPUT)):
        where = pools[1] if len(pools) > 1 else node
        raise LoweringError(
            f"max pooling {where.name!r} acts on currents after a neuron (or a second time): "
            "an analog max pool has no event form beyond the encoder; pool spikes (place it "
            "right after a neuron) or use average pooling")
    a = node.attrs
    if src is not None:  # the trained conv's factors (a folded BN) composed: host side
        src = ir.plain(src, tuple(graph.input_shape))
    conv = {} if src is None else {
        "weight": src.params["weight"], "bias": src.params.get("bias"),
        "stride": tuple(src.attrs["stride"]), "padding": tuple(src.attrs["padding"]),
        "groups": int(src.attrs.get("groups", 1))}
    return AnalogStem(in_shape=tuple(graph.input_shape), pool_kernel=tuple(a["kernel"]),
                      pool_stride=tuple(a["stride"]), pool_padding=tuple(a["padding"]),
                      **conv), node.name


def _spike_pool(node: ir.Node, neuron: ir.Node, shapes) -> SpikePool:
    T = np.asarray(neuron.params["timesteps"], np.int64)
    if T.ndim:  # one per channel (ir.check): kept as (C, 1, 1)
        T = np.broadcast_to(T, shapes[neuron.name])[:, :1, :1].copy()
    a = node.attrs
    return SpikePool(name=node.name, source=neuron.name, shape=tuple(shapes[node.name]),
                     kernel=tuple(a["kernel"]), stride=tuple(a["stride"]),
                     padding=tuple(a["padding"]), timesteps=T)


def _source_scale(term: ir.Node, f: np.ndarray, src_shape, fixed: bool):
    """The term's ``in_scale`` times the source factor ``f``, and the ``event_scale`` left
    over (per-neuron ``f`` into a conv cannot be a per-channel input scale)."""
    own = term.param("in_scale")
    own = np.ones(()) if own is None else own
    full = np.broadcast_to(f, src_shape)
    per_c = full.reshape(full.shape[0], -1) if len(src_shape) == 3 else None
    if f.size == 1 or term.op == "Gemm":
        return own * (f.reshape(()) if f.size == 1 else f), None
    if np.all(per_c == per_c[:, :1]):  # per channel
        return own * per_c[:, :1, None], None
    if fixed:
        raise LoweringError(
            f"projection {term.name!r}: per-neuron T feeding a convolution needs a per-event "
            "scale, which fixed point cannot represent; compile in float or use per-channel T")
    return own, np.array(full)


def _projection(t: ir.Node, target: str, src: str, sshape, in_scale, event_scale,
                bases: dict) -> Projection:
    """The projection of term ``t`` from ``src`` (values of shape ``sshape``): its trained
    factors, deployed geometry."""
    out = t.param("out_scale")
    in_scale = None if in_scale is None or np.all(np.asarray(in_scale) == 1) else in_scale
    pool = t.attrs.get("pool")
    a = t.attrs
    stride, padding = tuple(a.get("stride", (1, 1))), tuple(a.get("padding", (0, 0)))
    if pool is not None and t.op == "Conv":
        (_, s1, p1) = pool
        padding = (p1[0] + padding[0] * s1[0], p1[1] + padding[1] * s1[1])
        stride = (s1[0] * stride[0], s1[1] * stride[1])
    return Projection(
        name=t.name, source=src, target=target, kind="conv" if t.op == "Conv" else "dense",
        stride=stride, padding=padding, groups=int(a.get("groups", 1)),
        delay=0 if src == INPUT else 1, event_scale=event_scale,
        factors=Factors(_shared(t.params["weight"], bases),
                        None if in_scale is None else np.asarray(in_scale, np.float64),
                        None if out is None or np.all(out == 1) else np.asarray(out, np.float64),
                        None if pool is None else tuple(tuple(map(int, v)) for v in pool),
                        tuple(sshape), composition_of(t)))


def _shared(w, bases: dict) -> np.ndarray:
    """One read-only array per trained weight (the summands of a residual sum keep the
    trained layer's weight object: their projections share it)."""
    if id(w) not in bases:
        bases[id(w)] = (w, read_only(np.asarray(w, np.float64)))
    return bases[id(w)][1]


def lower(graph: ir.Graph, fixed_point: bool = False) -> SpikingGraph:
    """Build the spiking graph (all populations rate-coupled except those whose neuron asks
    for ``stream``: :func:`.passes.schedule.assign_couplings` decides if that holds)."""
    shapes = ir.infer_shapes(graph)
    by_name = {n.name: n for n in graph.nodes}
    pops: list[Population] = []
    projs: list[Projection] = []
    bases: dict[int, tuple] = {}
    stem, stem_node = _stem(graph, by_name)
    pools: dict[str, SpikePool] = {}

    def add_terms(target: str, value: str, row_scale) -> np.ndarray:
        bias = 0.0
        tshape = shapes[value]
        for t in _terms(graph, by_name, value, target):
            src = t.inputs[0]
            in_scale, es = t.param("in_scale"), None
            src_shape = shapes[src]
            if src == INPUT and stem is not None:
                raise LoweringError(f"{t.name!r} reads the input beside the analog max pool "
                                    f"{stem_node!r}; the encoder reads one of them")
            if src == stem_node:
                src = INPUT
            elif src != INPUT:
                if by_name[src].op == "SpikeMaxPool":
                    pools[src] = _spike_pool(by_name[src], by_name[by_name[src].inputs[0]],
                                             shapes)
                f = _source_factor(by_name[src], src_shape, by_name)
                in_scale, es = _source_scale(t, f, src_shape, fixed_point)
            b = t.params.get("bias")
            if b is not None:
                bias = bias + np.asarray(b).reshape((-1, 1, 1) if len(tshape) == 3 else (-1,))
            t = _row_factor(t, row_scale, tshape, f"population {target!r}")
            projs.append(_projection(t, target, src, src_shape, in_scale, es, bases))
        return np.asarray(bias, dtype=np.float64)

    for n in graph.nodes:
        if n.op != "Neuron":
            continue
        stream = n.attrs.get("coupling", "rate") == "stream"
        scale = np.asarray(n.params.get("scale", 1.0), np.float64)
        bias = scale * add_terms(n.name, n.inputs[0], scale) + \
            np.asarray(n.params.get("bias", 0.0), np.float64)
        shape = shapes[n.name]
        bias = np.reshape(bias, np.broadcast_shapes(np.shape(bias), (1,) * len(shape)))
        dyn = ir.neuron_dynamics(n)
        pops.append(Population(
            name=n.name, shape=shape, timesteps=np.asarray(n.params["timesteps"], np.int64),
            threshold=float(n.attrs["threshold"]), bias=bias, v0=float(n.attrs["v0"]),
            coupling="stream" if stream else "rate", reset=dyn.reset, du=dyn.du, dv=dyn.dv,
            v_reset=dyn.v_reset, fire=dyn.fire))
    rbias = add_terms(READOUT, graph.output, 1.0)
    rshape = shapes[graph.output]
    readout = Readout(READOUT, rshape, np.broadcast_to(rbias, rshape).copy())
    meta = dict(graph.meta)
    frames = int(meta.pop("frames", 0))
    shape = tuple(graph.input_shape) if stem is None else stem.shape
    return SpikingGraph(InputNode(shape, frames=frames, stem=stem), tuple(pops), readout,
                        tuple(projs), fixed_point=False, meta=meta, pools=tuple(pools.values()))
