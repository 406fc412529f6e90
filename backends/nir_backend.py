"""The NIR exporter (torch-free): a spiking graph -> a NIR 1.0.x file, node for node.

Every population becomes a NIR neuron, every projection an ``Affine`` (after a ``Flatten``
of a ``(C, H, W)`` source) or a ``Conv2d``; several projections into a node are several
edges (NIR sums them). Written in the convention snnTorch and SpikingJelly read with
``dt`` (:data:`DEFAULT_DT` = their 1e-4): a population with decays ``du``, ``dv`` is

* ``IF(r = 1/dt)`` when nothing decays; ``LIF(tau = dt/dv, r = 1/dv, v_leak = 0)``;
  ``CubaLIF(tau_syn = dt/du, w_in = 1/du, tau_mem = dt/dv, r = 1/dv)`` with a current;
  forward Euler with step ``dt`` then gives back ``v <- v(1−dv) + u`` with input weight 1;
* ``v_threshold = θ``, ``v_reset`` = its hard-reset value (0 for a soft reset);
* its bias goes into the bias of its first incoming ``Affine``/``Conv2d``.

The readout: an identity projection from one population becomes an edge to the ``Output``
(its value is that population's spike count); a leaky readout an ``LI(tau = dt/decay,
r = 1/decay)`` node; otherwise the projections feed the ``Output``, whose per-step values
summed over the run are the readout (its bias spread over the ``N`` steps).

Plain NIR readers (the NIR spec, Euler with that ``dt``, ``v > θ``, reset to ``v_reset``,
start at rest, no delay per layer, one run length ``N`` for every neuron) compute the same
spikes, shifted by each population's depth, exactly when :func:`lossy_reasons` is empty:
stream coupling (or a population the encoder alone drives), hard reset, ``v > θ``,
``v0 = 0``, one ``T`` for all, delays equal to depth differences (the importer's
alignment), no per-event scale, biases that fit the projection's bias, no input straight
into the readout, event frames (``Input`` of one frame, frame ``t`` at step ``t``) only into
stream-coupled populations. NIR has no max pool: a spike pool and the analog stem's pool
are written as ``SumPool2d`` nodes (the stem's conv as a ``Conv2d`` after the ``Input``)
and marked lossy. Everything else —
soft reset, per-neuron windows, rate coupling, delays, max pools — travels losslessly in the
``pseudosnn`` extension (:mod:`pseudosnn.compiler.frontend.nir_extension`), which our
importer reads back; ``pseudosnn export --lossy`` writes such a file for other readers and
measures what they lose. Fixed-point graphs are refused (export the float artifact).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from pseudosnn.compiler.frontend.nir import depths
from pseudosnn.compiler.frontend.nir_dialects import ReadoutMap
from pseudosnn.compiler.frontend.nir_extension import KEY_DIGEST, digest, encode, ungrouped
from pseudosnn.compiler.spiking.graph import AnalogStem, Population, Projection, SpikingGraph
from pseudosnn.compiler.spiking.synapses import frame_targets

from pseudosnn.errors import PseudoSNNError

DEFAULT_DT = 1e-4
"""The step written into ``tau``: snnTorch's hard-coded dt and SpikingJelly's default."""
INPUT_KEY, OUTPUT_KEY = "input", "output"


class NirExportError(PseudoSNNError, ValueError):
    """A graph the NIR exporter cannot write (names the reason and the fix)."""


@dataclass
class Exported:
    """The NIR graph of a spiking graph and why a plain NIR reader would compute something
    else (empty: exact up to the documented shift)."""

    graph: object  # nir.NIRGraph
    lossy: list[str]
    keys: dict[str, str]  # population name -> NIR node key
    steps: int  # N, the run length a plain reader should use


def _key(name: str, taken: set[str]) -> str:
    """A NIR node key for ``name``: HDF5 reads ``/`` as a path, so it becomes ``.``."""
    base = name.replace("/", ".")
    key, k = base, 1
    while key in taken:
        key, k = f"{base}.{k}", k + 1
    taken.add(key)
    return key


def _neuron(p: Population, dt: float):
    import nir

    def full(v):
        return np.full(p.shape, float(v))

    theta, v_reset = full(p.threshold), full(p.v_reset if p.reset == "hard" else 0.0)
    with np.errstate(divide="ignore"):
        if p.du == 1 and p.dv == 0:
            return nir.IF(r=full(1 / dt), v_threshold=theta, v_reset=v_reset)
        if p.du == 1:
            return nir.LIF(tau=full(dt / p.dv), r=full(1 / p.dv), v_leak=full(0.0),
                           v_threshold=theta, v_reset=v_reset)
        return nir.CubaLIF(tau_syn=full(dt / p.du), tau_mem=full(dt / p.dv),
                           r=full(1 / p.dv), v_leak=full(0.0), v_threshold=theta,
                           v_reset=v_reset, w_in=full(1 / p.du))


def _projection(pr: Projection, src_shape: tuple[int, ...], bias: np.ndarray):
    import nir

    w = np.asarray(pr.weight, np.float64)
    if pr.kind == "dense":
        return nir.Affine(weight=w, bias=np.broadcast_to(bias, (w.shape[0],)).copy())
    return nir.Conv2d(input_shape=tuple(src_shape[1:]), weight=ungrouped(w, int(pr.groups)),
                      stride=tuple(pr.stride), padding=tuple(pr.padding), dilation=(1, 1),
                      groups=1, bias=np.broadcast_to(bias, (w.shape[0],)).copy())


def _per_row(bias: np.ndarray, pr: Projection, shape) -> np.ndarray | None:
    """A target bias as ``pr``'s bias (per output of an Affine, per channel of a conv), or
    None when it does not fit."""
    b = np.broadcast_to(np.asarray(bias, np.float64), shape)
    if pr.kind == "dense":
        return b.reshape(-1).copy() if len(shape) == 1 else None
    per_c = b.reshape(shape[0], -1)
    return per_c[:, 0].copy() if np.all(per_c == per_c[:, :1]) else None


def identity_readout(graph: SpikingGraph) -> Projection | None:
    """The projection of a readout that only copies one population's spikes (no bias, no
    decay), else None."""
    ro = graph.readout
    incoming = graph.incoming(ro.name)
    if len(incoming) != 1 or ro.decay or np.any(np.asarray(ro.bias) != 0):
        return None
    pr = incoming[0]
    shape = graph.shape_of(pr.source)
    if pr.is_encoder or pr.event_scale is not None or tuple(shape) != tuple(ro.shape):
        return None
    w = np.asarray(pr.weight)
    if pr.kind == "dense":
        ok = w.shape[0] == w.shape[1] and np.array_equal(w, np.eye(w.shape[0]))
    else:
        ok = (pr.groups == shape[0] and w.shape == (shape[0], 1, 1, 1) and np.all(w == 1)
              and tuple(pr.stride) == (1, 1) and tuple(pr.padding) == (0, 0))
    return pr if ok else None


def lossy_reasons(graph: SpikingGraph) -> list[str]:
    """Why a plain NIR reader would not compute this graph's spikes (module docstring)."""
    why = []
    t_all = {int(t) for p in graph.populations for t in np.unique(p.timesteps)}
    for p in graph.populations:
        fed = [pr for pr in graph.incoming(p.name) if not pr.is_encoder]
        if p.reset == "soft":
            why.append(f"population {p.name!r} resets by subtraction (NIR: to v_reset)")
        if p.fire == ">=":
            why.append(f"population {p.name!r} fires on v >= threshold (NIR: v > threshold)")
        if p.v0 != 0:
            why.append(f"population {p.name!r} starts at v0 = {p.v0:g} (NIR: at rest, 0)")
        if p.coupling == "rate" and fed:
            why.append(f"population {p.name!r} is rate-coupled (NIR: every step's spikes)")
        if p.du < 1 and (p.du == 0 or p.dv == 0):
            why.append(f"population {p.name!r} keeps its current or voltage forever (an "
                       "infinite NIR time constant)")
    if len(t_all) > 1:
        why.append(f"populations run different windows T = {sorted(t_all)} (NIR: one run "
                   "length for every neuron)")
    why += [f"spike pool {q.name!r} max-pools spikes (an OR; NIR has no max pool: written "
            "as a SumPool2d)" for q in graph.pools]
    if graph.input.stem is not None:
        why.append("the input's analog stem max-pools (NIR has no max pool: written as a "
                   "SumPool2d)")
    framed = frame_targets(graph)
    for pr in graph.projections:
        if pr.is_encoder and pr.target == graph.readout.name:
            why.append(f"the input reaches the readout directly through {pr.name!r} (ours: "
                       "once; NIR: at every step)")
        elif pr.is_encoder and graph.input.frames and pr.target not in framed:
            why.append(f"population {pr.target!r} reads the event frames' time mean "
                       "(rate-coupled; NIR: frame t at step t)")
    depth = depths(graph)
    for pr in graph.projections:
        if pr.event_scale is not None:
            why.append(f"projection {pr.name!r} scales every event (per-neuron T)")
        if not pr.is_encoder and pr.delay != depth[pr.target] - depth[pr.source]:
            why.append(f"projection {pr.name!r} has delay {pr.delay}, not the depth "
                       f"difference {depth[pr.target] - depth[pr.source]} a NIR reader implies")
    return why


@dataclass
class _Writer:
    """The NIR nodes and edges of one graph as they are built."""

    graph: SpikingGraph
    dt: float
    nodes: dict = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    taken: set[str] = field(default_factory=lambda: {INPUT_KEY, OUTPUT_KEY})
    lossy: list[str] = field(default_factory=list)

    def readout(self, steps: int) -> tuple[str, np.ndarray]:
        """The node the readout's projections feed (the Output, or an LI before it for a
        leaky readout) and the per-step bias that adds up to the readout's bias."""
        ro = self.graph.readout
        if not ro.decay:
            return OUTPUT_KEY, np.asarray(ro.bias) / steps
        import nir

        key = _key(ro.name, self.taken)
        self.nodes[key] = nir.LI(tau=np.full(ro.shape, self.dt / ro.decay),
                                 r=np.full(ro.shape, 1 / ro.decay), v_leak=np.zeros(ro.shape))
        self.edges.append((key, OUTPUT_KEY))
        per_step = ReadoutMap(ro.decay, np.ones(()), 0.0, 0.0).constant(np.ones(()), steps)
        return key, np.asarray(ro.bias) / per_step

    def flat(self, src: str, shape: tuple[int, ...]) -> str:
        """``src`` flattened (one Flatten node per source, shared)."""
        import nir

        key = f"{src}.flatten"
        if key not in self.nodes:
            self.taken.add(key)
            self.nodes[key] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0,
                                          end_dim=-1)
            self.edges.append((src, key))
        return key

    def stem(self, stem: AnalogStem) -> str:
        """The analog stem's nodes after the Input: its conv as a Conv2d, its max pool as a
        SumPool2d (no NIR form: :func:`lossy_reasons`); returns the last one's key."""
        import nir

        src = INPUT_KEY
        if stem.weight is not None:
            key = _key(f"{stem.name}.conv", self.taken)
            bias = np.zeros(stem.weight.shape[0]) if stem.bias is None else stem.bias
            self.nodes[key] = nir.Conv2d(
                input_shape=tuple(stem.in_shape[1:]), weight=ungrouped(
                    np.asarray(stem.weight, np.float64), int(stem.groups)),
                stride=tuple(stem.stride), padding=tuple(stem.padding), dilation=(1, 1),
                groups=1, bias=np.asarray(bias, np.float64))
            self.edges.append((src, key))
            src = key
        return self.sum_pool(stem.name, src, stem.pool_kernel, stem.pool_stride,
                             stem.pool_padding)

    def sum_pool(self, name: str, src: str, kernel, stride, padding) -> str:
        """A SumPool2d node ``name`` reading ``src`` (a max pool's stand-in)."""
        import nir

        key = _key(name, self.taken)
        self.nodes[key] = nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                                        padding=np.array(padding))
        self.edges.append((src, key))
        return key

    def projection(self, pr: Projection, src: str, dst: str, bias: np.ndarray | None) -> str:
        """``pr`` as an Affine or Conv2d node from ``src`` to ``dst``; ``bias``: the target's
        bias this projection carries (None: none)."""
        g = self.graph
        row_bias = np.zeros(pr.weight.shape[0])
        if bias is not None:
            fit = _per_row(bias, pr, g.shape_of(pr.target))
            if fit is None:
                self.lossy.append(f"the bias of {pr.target!r} does not fit projection "
                                  f"{pr.name!r}'s bias")
            else:
                row_bias = fit
        src_shape = tuple(g.shape_of(pr.source))
        if pr.kind == "dense" and len(src_shape) > 1:
            src = self.flat(src, src_shape)
        key = _key(pr.name, self.taken)
        self.nodes[key] = _projection(pr, src_shape, row_bias)
        self.edges += [(src, key), (key, dst)]
        return key


def export(graph: SpikingGraph, dt: float = DEFAULT_DT) -> Exported:
    """The NIR graph of ``graph`` with the ``pseudosnn`` extension (module docstring)."""
    import nir

    if graph.fixed_point:
        raise NirExportError("NIR holds float parameters; export the float artifact (compile "
                             "without --fixed-point) and quantise on the target")
    if not (np.isfinite(dt) and dt > 0):
        raise NirExportError(f"--dt must be a positive number, got {dt}")
    w = _Writer(graph, dt, lossy=lossy_reasons(graph))
    keys = {p.name: _key(p.name, w.taken) for p in graph.populations}
    steps = max((p.t_max for p in graph.populations), default=1)
    inp = graph.input
    frame = inp.stem.in_shape if inp.stem is not None else inp.shape  # one step's input
    w.nodes = {INPUT_KEY: nir.Input(input_type={"input": np.array(frame)}),
               OUTPUT_KEY: nir.Output(output_type={"output": np.array(graph.readout.shape)}),
               **{keys[p.name]: _neuron(p, dt) for p in graph.populations}}
    ro_key, ro_bias = w.readout(steps)
    node_of = {inp.name: INPUT_KEY if inp.stem is None else w.stem(inp.stem), **keys,
               graph.readout.name: ro_key}
    for q in graph.pools:  # in topological order: a pool's source has its key
        node_of[q.name] = w.sum_pool(q.name, node_of[q.source], q.kernel, q.stride, q.padding)
    bias_of = {p.name: p.bias for p in graph.populations} | {graph.readout.name: ro_bias}
    ident = identity_readout(graph)
    proj_keys: dict[str, str | None] = {}
    for pr in graph.projections:
        if pr is ident:  # the readout copies one population's spikes: an edge
            proj_keys[pr.name] = None
            w.edges.append((node_of[pr.source], OUTPUT_KEY))
        else:  # a target's bias rides on its first projection
            proj_keys[pr.name] = w.projection(pr, node_of[pr.source], node_of[pr.target],
                                              bias_of.pop(pr.target, None))
    meta, node_meta = encode(graph, keys, proj_keys, dt)
    for key, extra in node_meta.items():
        w.nodes[key].metadata = {**w.nodes[key].metadata, **extra}
    try:
        g = nir.NIRGraph(nodes=w.nodes, edges=w.edges, metadata=meta)
    except ValueError as exc:  # e.g. nir's conv shapes assume square kernels
        w.lossy.append(f"nir {nir.version} cannot infer this graph's types ({exc}); readers "
                       "that type-check refuse the file")
        g = nir.NIRGraph(nodes=w.nodes, edges=w.edges, metadata=meta, type_check=False)
    g.metadata[KEY_DIGEST] = digest(g)
    return Exported(g, w.lossy, keys, steps)


def to_bytes(exported: Exported) -> bytes:
    """The HDF5 bytes of an exported graph (``nir.write``)."""
    import nir

    buf = io.BytesIO()
    nir.write(buf, exported.graph)
    return buf.getvalue()


class NirExporter:
    """``pseudosnn export --format nir`` through the exporter registry."""

    name = "nir"

    def __init__(self, dt: float = DEFAULT_DT) -> None:
        self.dt = dt

    def export(self, graph: SpikingGraph) -> Exported:
        return export(graph, self.dt)

    def to_bytes(self, exported: Exported) -> bytes:
        return to_bytes(exported)
