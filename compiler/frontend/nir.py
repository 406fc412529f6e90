"""NIR files -> the spiking graph (torch-free; reads with the ``nir`` package).

A file written by our exporter carries the lossless extension
(:mod:`.nir_extension`) and is read back exactly. Any other file is read in a *dialect*
(``--from``, :mod:`.nir_dialects`: the library that wrote it fixes the discretisation),
node for node:

* ``Affine``/``Linear`` -> ``Gemm``; ``Conv1d``/``Conv2d`` -> ``Conv`` (a 1-D value
  ``(C, L)`` is held as ``(C, 1, L)``); ``SumPool2d``/``AvgPool2d`` -> a depthwise ``Conv``
  of ones (``1/k²``; the trained layers the ANN baseline is counted on keep it a
  pooling); ``Scale`` -> a diagonal ``Gemm`` or a per-channel depthwise ``Conv``;
  ``Flatten`` of every axis -> ``Flatten``; ``Delay`` of zero steps -> nothing; several
  edges into a node -> their sum (``Add``); ``IF``/``LIF``/``CubaLIF``/``Threshold`` ->
  ``Neuron`` (:func:`.nir_dialects.neuron_map`), stream-coupled, every one for
  ``timesteps`` steps.
* The compiler's IR passes then fuse the linear chains between neurons into projections
  (:data:`NIR_PASSES`: the pipeline's, without ``scale_fold``, which would divide the
  weights by the thresholds and change the float rounding against the library's loop);
  lowering gives the spiking graph.
* **Timing.** The libraries apply a Linear/Conv in the step its input spikes (no delay per
  layer); our projections deliver one step late (like Lava). Every population ``p`` gets a
  depth ``d(p)`` (0 for those the encoder drives, else ``max(d(source)) + 1``) and every
  projection the delay ``d(target) − d(source)``, so every path stays aligned: **our spike
  of neuron i at step ``t + d(p)`` (``= t + p.start``) is the library's at step ``t``**.
* **Input**: the same input every step (direct encoding) drives the first populations
  through the encoder; with ``frames`` (``--frames``) a sample is ``timesteps`` inputs,
  one per step (event frames: the first populations integrate input ``k`` at step ``k``,
  as the library's loop fed a new input every step). **Output** (the readout): a spiking
  node's spike counts over the ``timesteps`` steps; an ``LI``/``I`` node's state after the
  last step (decay and input weight per dialect); a linear node's output summed over the
  steps.

Refused in one line naming the node: cycles (recurrence), subgraphs, unknown node types,
Delay of more than zero steps, partial flattens, dilation, string padding, parameters that
differ across a layer's neurons where a population has one value, a node with time
constants and no ``--dt``, an input that reaches a leaky readout directly with ``frames``
(its per-step decay of each frame has no event form here).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import networkx as nx
import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.frontend.nir_dialects import (
    DIALECTS,
    Dialect,
    NirMappingError,
    ReadoutMap,
    neuron_map,
    readout_map,
    resolve_dt,
)
from pseudosnn.compiler.lower import READOUT, lower
from pseudosnn.compiler.pipeline import IR_PASSES
from pseudosnn.compiler.spiking.graph import SpikePool, SpikingGraph
from pseudosnn.compiler.spiking.schedule import POOL_DELAY, schedule

from pseudosnn.errors import PseudoSNNError, UsageError

NIR_PASSES = [(name, fn) for name, fn in IR_PASSES if name != "scale_fold"]
"""The IR passes an imported graph runs (module docstring)."""
SPIKING = ("IF", "LIF", "CubaLIF", "Threshold")
NON_SPIKING = ("LI", "I", "CubaLI")
LINEAR = ("Affine", "Linear", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Scale",
          "Flatten", "Delay")
KNOWN = ("Input", "Output", *SPIKING, *NON_SPIKING, *LINEAR)
TIMED = ("LIF", "CubaLIF", "LI", "CubaLI", "Delay")
"""Node types whose parameters are times (``--dt`` needed); IF and I need it too in the
dialects that multiply ``r`` by it."""
RESERVED = (ir.INPUT, READOUT)


class NirError(PseudoSNNError, ValueError):
    """A NIR file that cannot be read or has no exact mapping (names the file or node)."""


@dataclass(frozen=True)
class NirOptions:
    """How to read a file without our extension: the dialect, ``dt``, the steps and whether
    the input varies per step (``frames``: a sample is ``timesteps`` inputs)."""

    dialect: str | None = None
    dt: float | None = None
    timesteps: int | None = None
    frames: bool = False
    max_timesteps: int | None = None
    verify: bool = False  # check the IR's invariants after every pass


def read_file(path: str | Path):
    """The ``nir.NIRGraph`` in ``path``, or a one-line :class:`NirError` (not HDF5 or
    truncated, not a NIR graph, unknown node types, unreadable parameters)."""
    import h5py
    import nir

    path = Path(path)
    if not path.is_file():
        raise NirError(f"{path} does not exist or is not a file")
    try:
        with h5py.File(path, "r") as f:
            _check_layout(path, f)
    except OSError as exc:
        raise NirError(f"{path} is not a NIR file: HDF5 cannot open it (truncated or not "
                       f"HDF5: {str(exc).splitlines()[0]})") from exc
    try:
        return nir.read(str(path), type_check=False)
    except Exception as exc:  # nir raises bare asserts, KeyErrors, TypeErrors on bad files
        raise NirError(f"{path}: the nir package cannot read it "
                       f"({type(exc).__name__}: {exc})") from exc


def _check_layout(path: Path, f) -> None:
    """Every node of the top-level graph has a type NIR defines (and no subgraph)."""
    root = f.get("node")
    if root is None or "type" not in root or "nodes" not in root or "edges" not in root:
        raise NirError(f"{path} is an HDF5 file but not a NIR graph (no node/nodes/edges)")
    for key, node in root["nodes"].items():
        kind = node["type"][()] if "type" in node else b"?"
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "NIRGraph":
            raise NirError(f"{path}: node {key!r} is a subgraph (how snnTorch writes a "
                           "recurrent layer); recurrence is not supported yet")
        if kind not in KNOWN:
            raise NirError(f"{path}: node {key!r} has type {kind!r}, which is not a NIR "
                           f"node this importer knows ({', '.join(KNOWN)})")


def _structure(path: Path, g) -> tuple[list[str], str, str, dict[str, list[str]]]:
    """Topological order, the Input and Output keys, and every node's sources."""
    import nir

    ins = [k for k, n in g.nodes.items() if isinstance(n, nir.Input)]
    outs = [k for k, n in g.nodes.items() if isinstance(n, nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise NirError(f"{path}: the graph needs exactly one Input and one Output node "
                       f"(has inputs {ins} and outputs {outs})")
    graph = nx.DiGraph()
    graph.add_nodes_from(g.nodes)
    for src, dst in g.edges:
        for end in (src, dst):
            if end not in g.nodes:
                raise NirError(f"{path}: edge {src!r} -> {dst!r} names no node {end!r}")
        graph.add_edge(src, dst)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        loop = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
        raise NirError(f"{path}: the graph has a cycle {loop} (a recurrent layer); "
                       "recurrence is not supported yet")
    preds = {k: sorted(graph.predecessors(k)) for k in g.nodes}
    return list(nx.lexicographical_topological_sort(graph)), ins[0], outs[0], preds


def _ours(shape) -> tuple[int, ...]:
    """A NIR value shape as ours: a 1-D signal ``(C, L)`` is held as ``(C, 1, L)``."""
    shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    return (shape[0], 1, shape[1]) if len(shape) == 2 else shape


def _pair(value, where: str, what: str) -> tuple[int, int]:
    if isinstance(value, str | bytes):
        raise NirMappingError(f"{where}: {what} {value!r} (a string) is not supported; "
                              "write it as numbers")
    a = np.atleast_1d(np.asarray(value)).astype(np.int64).reshape(-1)
    return (int(a[0]), int(a[-1]))


@dataclass
class _Builder:
    """Builds the IR of a NIR graph node by node (module docstring)."""

    g: object
    path: Path
    dialect: Dialect
    dt: float | None
    timesteps: int
    output: str
    nodes: list[ir.Node] = field(default_factory=list)
    value: dict[str, str] = field(default_factory=dict)  # NIR key -> IR value
    nshape: dict[str, tuple[int, ...]] = field(default_factory=dict)  # IR value -> NIR shape
    neurons: set[str] = field(default_factory=set)
    pools: dict[str, ir.Node] = field(default_factory=dict)  # IR conv -> the pool it is
    readout: ReadoutMap = field(default_factory=lambda: ReadoutMap(0.0, np.ones(()), 0.0,
                                                                   0.0))
    readout_of: str = ""

    def where(self, key: str) -> str:
        return f"node {key!r} ({type(self.g.nodes[key]).__name__})"

    @staticmethod
    def name(key: str) -> str:
        """The IR (and population) name of NIR node ``key``: the key, unless it is one of
        the names the spiking graph reserves."""
        return f"{key}_nir" if key in RESERVED else key

    def add(self, node: ir.Node, nir_shape) -> str:
        shapes = {i: _ours(self.nshape[i]) for i in node.inputs}
        try:
            ir.node_shape(node, [shapes[i] for i in node.inputs])
        except ir.IRError as exc:
            raise NirError(f"{self.path}: {exc}") from exc
        self.nodes.append(node)
        self.nshape[node.name] = tuple(int(s) for s in nir_shape)
        return node.name

    def source(self, key: str, preds: list[str]) -> str:
        """The IR value a node reads: its one source, or the sum of several."""
        if not preds:
            raise NirError(f"{self.path}: {self.where(key)} has no incoming edge")
        vals = [self.value[p] for p in preds]
        if len(vals) == 1:
            return vals[0]
        shapes = {self.nshape[v] for v in vals}
        if len(shapes) != 1:
            raise NirError(f"{self.path}: {self.where(key)} sums inputs of different shapes "
                           f"{sorted(shapes)}")
        return self.add(ir.Node(f"{self.name(key)}/sum", "Add", tuple(vals)), shapes.pop())

    def build(self, key: str, preds: list[str]) -> None:
        node = self.g.nodes[key]
        kind = type(node).__name__
        src = self.source(key, preds)
        where = self.where(key)
        if kind in SPIKING:
            self.value[key] = self.neuron(key, kind, node, src, where)
        elif kind in NON_SPIKING:
            self.value[key] = self.integrator(key, kind, node, src, where)
        elif kind == "Output":
            self.value[key] = src
        else:
            self.value[key] = self.linear(key, kind, node, src, where)

    def neuron(self, key: str, kind: str, node, src: str, where: str) -> str:
        m = neuron_map(where, node, kind, self.dialect, self.dt)
        shape = self.nshape[src]
        scale = m.scale if m.scale.size == 1 else m.scale.reshape(_ours(shape))
        self.neurons.add(key)
        return self.add(ir.neuron(self.name(key), src, self.timesteps, threshold=m.threshold,
                                  v0=m.v0, scale=scale, out_scale=float(self.timesteps),
                                  coupling="stream", reset=m.dynamics.reset,
                                  dynamics=m.dynamics), shape)

    def integrator(self, key: str, kind: str, node, src: str, where: str) -> str:
        consumers = [d for s, d in self.g.edges if s == key]
        if consumers != [self.output]:
            raise NirMappingError(f"{where}: a non-spiking node must feed only the Output "
                                  f"(it feeds {consumers}); it becomes the readout")
        if kind == "CubaLI":
            raise NirMappingError(f"{where}: a CubaLI readout (two decays) has no exact "
                                  "mapping; our readout has one decay (LI, I)")
        self.readout = readout_map(where, node, kind, self.dialect, self.dt)
        self.readout_of = f"the state of {kind} {key!r} after the last step"
        return src

    def linear(self, key: str, kind: str, node, src: str, where: str) -> str:
        shape = self.nshape[src]
        if kind in ("Affine", "Linear"):
            if len(shape) != 1:
                raise NirMappingError(f"{where} acts on a {shape} value: NIR applies it to the "
                                      "last axis; only flat inputs are supported (flatten "
                                      "first)")
            w = np.asarray(node.weight, np.float64)
            bias = np.asarray(node.bias, np.float64) if kind == "Affine" else None
            return self.add(ir.gemm(self.name(key), src, w, bias), (w.shape[0],))
        if kind in ("Conv1d", "Conv2d"):
            return self.conv(key, kind, node, src, where, shape)
        if kind in ("SumPool2d", "AvgPool2d"):
            return self.pool(key, kind, node, src, where, shape)
        if kind == "Scale":
            return self.scale(key, node, src, where, shape)
        if kind == "Flatten":
            return self.flatten(key, node, src, where, shape)
        steps = np.asarray(node.delay, np.float64) / (self.dt or 1.0)  # Delay
        if np.any(steps != 0):
            raise NirMappingError(f"{where}: a delay of {steps.max():g} steps would need "
                                  "windows of different lengths in a stream-coupled chain; "
                                  "only zero delays are supported")
        return src

    def conv(self, key: str, kind: str, node, src: str, where: str, shape) -> str:
        w = np.asarray(node.weight, np.float64)
        if kind == "Conv1d":
            w = w[:, :, None, :]
        dil = _pair(node.dilation, where, "dilation")
        if dil != (1, 1):
            raise NirMappingError(f"{where}: dilation {dil} is not supported")
        stride = _pair(node.stride, where, "stride")
        pad = _pair(node.padding, where, "padding")
        if kind == "Conv1d":
            stride, pad = (1, stride[1]), (0, pad[1])
        n = ir.conv(self.name(key), src, w, np.asarray(node.bias, np.float64), stride, pad,
                    int(np.asarray(node.groups)))
        out = ir.node_shape(n, [_ours(shape)]) if len(shape) in (2, 3) else None
        if out is None:
            raise NirMappingError(f"{where} acts on a {shape} value; a convolution needs "
                                  "(C, H, W) or (C, L)")
        return self.add(n, (out[0], out[2]) if kind == "Conv1d" else out)

    def pool(self, key: str, kind: str, node, src: str, where: str, shape) -> str:
        if len(shape) != 3:
            raise NirMappingError(f"{where} acts on a {shape} value; pooling needs (C, H, W)")
        k = _pair(node.kernel_size, where, "kernel_size")
        stride, pad = _pair(node.stride, where, "stride"), _pair(node.padding, where, "padding")
        c = shape[0]
        w = np.ones((c, 1, *k)) / (1.0 if kind == "SumPool2d" else k[0] * k[1])
        n = ir.conv(self.name(key), src, w, None, stride, pad, groups=c)
        self.pools[n.name] = ir.Node(n.name, "AvgPool", n.inputs, attrs={
            "kernel": k, "stride": stride, "padding": pad})
        return self.add(n, ir.node_shape(n, [shape]))

    def scale(self, key: str, node, src: str, where: str, shape) -> str:
        s = np.broadcast_to(np.asarray(node.scale, np.float64), shape)
        if len(shape) == 1:
            return self.add(ir.gemm(self.name(key), src, np.diag(s)), shape)
        per_c = s.reshape(shape[0], -1)
        if not np.all(per_c == per_c[:, :1]):
            raise NirMappingError(f"{where}: a per-neuron scale of a {shape} value is not a "
                                  "convolution (only per-channel scales are supported)")
        n = ir.conv(self.name(key), src, per_c[:, 0].reshape(-1, 1, 1, 1), groups=shape[0])
        return self.add(n, shape)

    def flatten(self, key: str, node, src: str, where: str, shape) -> str:
        nd = len(shape)
        start, end = int(node.start_dim) % max(nd, 1), int(node.end_dim) % max(nd, 1)
        if nd <= 1 or start == end:
            return src
        if (start, end) != (0, nd - 1):
            raise NirMappingError(f"{where}: flattening axes {start}..{end} of a {shape} "
                                  "value; only a flatten of every axis is supported")
        return self.add(ir.Node(self.name(key), "Flatten", (src,)), (int(np.prod(shape)),))


def depths(graph: SpikingGraph) -> dict[str, int]:
    """Depth of every population and the readout: 0 when only the encoder drives it, else
    one more than its deepest event source; a spike pool's is its source's plus
    :data:`~pseudosnn.compiler.spiking.schedule.POOL_DELAY` (the step it forwards)."""
    depth: dict[str, int] = {}
    for node in [*graph.topological_sources(), graph.readout]:
        if isinstance(node, SpikePool):
            depth[node.name] = depth[node.source] + POOL_DELAY
            continue
        srcs = [pr.source for pr in graph.incoming(node.name) if not pr.is_encoder]
        depth[node.name] = max((depth[s] + 1 for s in srcs), default=0)
    return depth


def align(graph: SpikingGraph, path: Path) -> SpikingGraph:
    """Delays that keep every path aligned (module docstring), then the schedule."""
    depth = depths(graph)
    for pop in graph.populations:
        enc = [pr for pr in graph.incoming(pop.name) if pr.is_encoder]
        if enc and depth[pop.name] > 0:
            raise NirError(f"{path}: population {pop.name!r} reads both the input and other "
                           "layers; a stream population cannot start with both (not "
                           "supported)")
    projs = [pr if pr.is_encoder else replace(pr, delay=depth[pr.target] - depth[pr.source])
             for pr in graph.projections]
    return schedule(replace(graph, projections=tuple(projs)))


def _readout(graph: SpikingGraph, m: ReadoutMap, steps: int, path: Path) -> SpikingGraph:
    """The readout of ``m``: input weight ``g`` on every projection into it (times the
    ``steps``-step sum ``S`` of a constant input for the encoder, whose current is the same
    every step; with event frames it is their time mean, and ``S = steps`` makes it their
    sum only without decay), its decay, and what the per-step biases, drive and start
    contribute."""
    ro = graph.readout
    if m.decay and graph.input.frames and any(pr.is_encoder
                                              for pr in graph.incoming(ro.name)):
        raise NirMappingError(f"{path}: the input reaches the leaky readout directly; with "
                              "--frames each frame decays differently, which our readout "
                              "(the frames' mean, added once) cannot express: read it "
                              "without --frames")
    const = replace(m, drive=0.0, start=0.0).constant(np.ones(()), steps)  # g·S
    projs = tuple(replace(pr, weight=_row_scale(pr.weight, const if pr.is_encoder
                                                else m.scale, ro.shape, path))
                  if pr.target == ro.name else pr for pr in graph.projections)
    bias = m.constant(np.asarray(ro.bias, np.float64), steps)
    return replace(graph, projections=projs, readout=replace(
        ro, bias=np.broadcast_to(bias, ro.shape).copy(), decay=m.decay))


def _row_scale(w: np.ndarray, g: np.ndarray, shape, path: Path) -> np.ndarray:
    """``w``'s rows (outputs) times ``g`` (one value, per output, or per channel of a conv)."""
    g = np.asarray(g, np.float64)
    if g.size == 1:
        return w if float(g.flat[0]) == 1.0 else w * float(g.flat[0])
    rows = np.broadcast_to(g, shape)
    if w.ndim == 2:
        return w * rows.reshape(-1, 1)
    per_c = rows.reshape(rows.shape[0], -1)
    if not np.all(per_c == per_c[:, :1]):
        raise NirMappingError(f"{path}: the readout's input weight differs within a channel of "
                              "a convolution")
    return w * per_c[:, :1].reshape(-1, 1, 1, 1)


def _to_ir(path: Path, g, dialect: Dialect, dt: float | None, steps: int, frames: bool,
           ) -> tuple[ir.Graph, _Builder]:
    order, input_key, output_key, preds = _structure(path, g)
    b = _Builder(g, path, dialect, dt, steps, output_key)
    shape = g.nodes[input_key].input_type["input"]
    if shape is None:
        raise NirError(f"{path}: the Input node {input_key!r} has no shape")
    b.value[input_key] = ir.INPUT
    b.nshape[ir.INPUT] = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    for key in order:
        if key != input_key:
            b.build(key, preds[key])
    out = b.value[output_key]
    if out == ir.INPUT:
        raise NirError(f"{path}: the Output reads the Input directly; nothing to deploy")
    if not b.readout_of:
        src = preds[output_key][0] if len(preds[output_key]) == 1 else None
        b.readout_of = (f"the spike counts of {src!r} over the {steps} steps"
                        if src in b.neurons else f"the output summed over the {steps} steps")
    graph = ir.Graph(_ours(b.nshape[ir.INPUT]), tuple(b.nodes), out,
                     meta={"frames": steps} if frames else {})
    return graph, b


def needed_dt(g, dialect: Dialect) -> str | None:
    """The first node (``'key' (Type)``) whose mapping needs ``dt`` in ``dialect``, or None."""
    for key, node in g.nodes.items():
        kind = type(node).__name__
        if kind in TIMED or (kind in ("IF", "I") and dialect.if_input == "r_dt"):
            return f"{key!r} ({kind})"
    return None


def load_nir(path: str | Path, options: NirOptions = NirOptions()) -> SpikingGraph:
    """The scheduled spiking graph of a NIR file: exactly what our exporter wrote when the
    file carries our extension (unless ``options.dialect`` asks for another reading), else
    the file in ``options.dialect`` (module docstring)."""
    from pseudosnn.compiler.frontend.nir_extension import decode, has_extension

    path = Path(path)
    g = read_file(path)
    if options.dialect is None and has_extension(g):
        if options.dt is not None or options.timesteps is not None or options.frames:
            raise UsageError(f"{path} was written by pseudosnn and is read exactly; --dt, "
                             "--timesteps and --frames apply to another reading (--from)")
        return decode(g, path)
    if options.dialect is None:
        raise UsageError(f"{path} does not say which library wrote it (NIR stores no source "
                         f"and no time step): give --from {'|'.join(DIALECTS)}")
    if options.dialect not in DIALECTS:
        raise UsageError(f"unknown --from {options.dialect!r}; known: {', '.join(DIALECTS)}")
    if options.timesteps is None:
        raise UsageError("give --timesteps N: how many steps the imported network runs "
                         "(NIR does not store it)")
    dialect = DIALECTS[options.dialect]
    dt = resolve_dt(dialect, options.dt, needed_dt(g, dialect))
    ir.check_timesteps("--timesteps", np.asarray(options.timesteps), options.max_timesteps)
    ir_graph, b = _to_ir(path, g, dialect, dt, options.timesteps, options.frames)
    return _lowered(path, ir_graph, b, dialect, dt, options)


def _lowered(path: Path, ir_graph: ir.Graph, b: _Builder, dialect: Dialect,
             dt: float | None, options: NirOptions) -> SpikingGraph:
    """IR passes (with ``options.verify``, the IR's invariants after each), lowering,
    aligned delays and the readout; ``meta`` says where the graph came from and how it
    was read."""
    steps = options.timesteps
    stage = "import"
    try:
        ir.check(ir_graph, options.max_timesteps)
        cur = ir_graph
        for name, fn in NIR_PASSES:
            stage = name
            cur = fn(cur)
            if options.verify:
                ir.check(cur, options.max_timesteps)
        stage = "lower"
        sg = lower(cur)
    except ir.IRError as exc:
        raise NirError(f"{path}: {exc} (at {stage})") from exc
    sg = _readout(align(sg, path), b.readout, steps, path)
    meta = {
        "source": str(path), "source_framework": dialect.library,
        "nir": {"dialect": dialect.name, "dt": dt, "timesteps": steps,
                "readout": b.readout_of, "spike_shift": {p.name: p.start
                                                         for p in sg.populations}},
        "trained_layers": [layer.as_dict() for layer in ir.trained_layers(
            ir_graph.with_nodes(b.pools.get(n.name, n) for n in ir_graph.nodes))],
        "warnings": [dialect.note] if dialect.note else [],
        "latency_steps": sg.latency_steps, "pipeline_interval": sg.pipeline_interval,
    }
    sg = replace(sg, meta=meta)
    sg.validate()
    return sg

