"""The event-driven spiking graph: the compiler's output and the contract every backend runs
(DESIGN.md §2).

Nodes (frozen dataclasses whose arrays are read-only) are one :class:`InputNode` (the
analog image or event frames, with an optional host-side :class:`AnalogStem`), spiking
:class:`Population` s, :class:`SpikePool` s (max pooling of a population's spikes) and one
non-spiking :class:`Readout`. Edges are :class:`Projection` s (dense or conv synapses)
from the input, a population or a pool. Several projections may join the same pair of
nodes (``to_networkx`` gives a ``MultiDiGraph``).

Execution semantics (0-indexed global clock ``t = 0, 1, ...``):

* Events emitted by a source at step ``t`` are delivered through a projection at step
  ``t + delay`` (``delay = 1``: Lava's ``Dense``/``Conv`` deliver one step late). The
  encoder projection (from the input, ``delay = 0``) delivers its analog current once.
* Projection weights act on *events*: the trained ``W`` acting on rates ``n/T_src`` is
  folded by the compiler into ``W/T_src``. ``event_scale`` (float mode only) carries
  per-source-neuron factors that cannot be folded into shared conv weights.
* A float projection may carry its trained :class:`Factors` instead of a materialised
  ``weight`` (the deployed, fused weight is then composed from them on first use):
  ``project(x) = out_scale ⊙ base(sumpool(in_scale ⊙ x))``. Counting follows the deployed
  structure (``weight_shape``, ``stride``, ``padding``); every float executor that computes
  currents itself computes them from the factors (:mod:`.synapses`).
* A **rate**-coupled population accumulates every delivered event; when all sources'
  windows are closed (its ``start``, :mod:`.schedule`) it integrates the constant current
  ``c = sum_k proj_k(n_k) + b`` during its window, neuron ``i`` for its own ``T_i`` steps:
  ``start <= t < start + T_i``. The neuron step is :mod:`.semantics` (integrate-and-fire,
  or the population's leak ``du``/``dv``, hard reset to ``v_reset`` and comparison
  ``fire``: :class:`.semantics.Dynamics`); outside its window a neuron neither
  integrates, leaks nor fires.
* A **stream**-coupled population integrates at step ``t`` the events delivered at ``t``
  plus ``b`` (plus an encoder current: held constant, or frame ``k`` at window step ``k``
  for event-frame input).
* A **spike pool** emits at step ``t`` the OR, over each window, of its source's spikes of
  step ``t - POOL_DELAY`` (:mod:`.schedule`); its events feed projections like a
  population's.
* **Event frames** (``InputNode.frames = F``): a sample is ``F`` frames; a stream-coupled
  target receives frame ``k`` at step ``k`` (its ``T`` must be ``F``), a rate-coupled one
  the current of the frames' time mean, once.
* The readout accumulates every delivered event and adds ``b`` once; its value is final at
  ``readout_step``; the latency of one sample is ``readout_step + 1`` steps. A *leaky*
  readout (``decay > 0``, an imported NIR ``LI`` node) decays its accumulator before each
  step's delivery, ``acc <- acc·(1 − decay) + delivered(t)`` for ``t <= readout_step``
  (float graphs only); the encoder's current, like ``b``, is added once.
* Fixed point (``SpikingGraph.fixed_point``): weights are integers in ``[-128, 127]`` with
  a per-projection ``weight_exp`` in ``[0, 7]``; a projection contributes
  ``(W_int @ events) << weight_exp``; thresholds, biases and ``v0`` are integers; the
  membrane saturates to 24 bits. Encoder currents are ``floor(c*u + 1/2)`` with the target
  population's ``units_per_float`` ``u``; the readout's float value is
  ``(acc + b_int) / readout.units_per_float``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import networkx as nx
import numpy as np
from pseudosnn.compiler.spiking.semantics import DECAY_UNITY, Dynamics, Fire, Reset

from pseudosnn.errors import PseudoSNNError

Coupling = Literal["rate", "stream"]
INPUT = "input"

WEIGHT_MIN, WEIGHT_MAX = -128, 127
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = 0, 7


class GraphError(PseudoSNNError, ValueError):
    """The spiking graph breaks one of its invariants."""


def read_only(a) -> np.ndarray:
    """``a`` as an array nobody can change in place: a read-only array is kept as it is,
    anything else is copied first (the caller may still hold the original)."""
    a = np.asarray(a)
    if a.flags.writeable:
        a = a.copy()
        a.flags.writeable = False
    return a


class _Frozen:
    """Mixin of the graph dataclasses: every ``np.ndarray``-typed field is stored read-only
    (see :func:`read_only`), so a node can never change under a cache or a backend."""

    _ARRAYS: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self._ARRAYS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, read_only(value))


def pool_shape(shape: tuple[int, ...], kernel, stride, padding) -> tuple[int, ...]:
    """Output shape ``(C, H', W')`` of a 2-d pooling window on ``(C, H, W)``."""
    c, h, w = shape
    return (int(c), (h + 2 * padding[0] - kernel[0]) // stride[0] + 1,
            (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)


@dataclass(frozen=True, eq=False)
class AnalogStem(_Frozen):
    """The host-side, analog part of the encoder (DESIGN.md §2: a max pool before any
    neuron belongs to the encoder), applied to every sample before the encoder projections:
    ``y = maxpool_{pool_*}(conv(x, weight, stride, padding, groups) + bias)`` (no conv when
    ``weight`` is None), the pool's padding taps counting as ``-inf`` (PyTorch's
    ``MaxPool2d``). Computed once per sample: MACs of the conv, compares of the pool."""

    _ARRAYS = ("weight", "bias")

    in_shape: tuple[int, ...]
    pool_kernel: tuple[int, int]
    pool_stride: tuple[int, int]
    pool_padding: tuple[int, int] = (0, 0)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    name: str = f"{INPUT}/stem"

    @property
    def conv_shape(self) -> tuple[int, ...]:
        """Shape the pool reads (the conv's output, or the sample itself)."""
        if self.weight is None:
            return tuple(self.in_shape)
        c_out, _, kh, kw = self.weight.shape
        return pool_shape((c_out, *self.in_shape[1:]), (kh, kw), self.stride, self.padding)

    @property
    def shape(self) -> tuple[int, ...]:
        return pool_shape(self.conv_shape, self.pool_kernel, self.pool_stride,
                          self.pool_padding)


@dataclass(frozen=True)
class InputNode:
    """The analog input (direct encoding). ``shape`` is what the encoder projections read
    per sample (and per frame): the sample itself, or the output of the host-side
    ``stem``. ``frames > 0``: every sample is ``frames`` event frames (DVS)."""

    shape: tuple[int, ...]
    name: str = INPUT
    frames: int = 0
    stem: AnalogStem | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one data sample: ``(frames, *frame)`` for event frames."""
        raw = tuple(self.stem.in_shape) if self.stem is not None else tuple(self.shape)
        return (self.frames, *raw) if self.frames else raw


class _Window:
    """What an event source's window is, from its ``shape``, ``timesteps`` and ``start``."""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def t_max(self) -> int:
        return int(np.max(self.timesteps))

    @property
    def end(self) -> int:
        """One past the last step of the window."""
        return self.start + self.t_max

    def timesteps_full(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.timesteps, dtype=np.int64), self.shape)


@dataclass(frozen=True, eq=False)
class Population(_Window, _Frozen):
    """A layer of spiking neurons: integrate-and-fire with soft reset by default.

    ``timesteps`` and ``bias`` broadcast to ``shape`` (a scalar ``timesteps`` is per-layer
    T; shape ``(C, 1, 1)`` per channel; ``shape`` itself per neuron). ``start`` is the
    first step of the window (set by :func:`.schedule.schedule`). ``units_per_float`` is
    the fixed-point unit: integer membrane units per float unit (1.0 in float mode).
    ``du``, ``dv``, ``reset``, ``v_reset`` and ``fire`` are the neuron's
    :class:`.semantics.Dynamics` (``v_reset`` in membrane units, an integer in fixed point).
    """

    _ARRAYS = ("timesteps", "bias")

    name: str
    shape: tuple[int, ...]
    timesteps: np.ndarray
    threshold: float
    bias: np.ndarray
    v0: float
    coupling: Coupling = "rate"
    reset: Reset = "soft"
    start: int = 0
    units_per_float: float = 1.0
    du: float = 1.0
    dv: float = 0.0
    v_reset: float = 0.0
    fire: Fire = ">="

    @property
    def dynamics(self) -> Dynamics:
        return Dynamics(du=self.du, dv=self.dv, reset=self.reset, v_reset=self.v_reset,
                        fire=self.fire)

    def bias_full(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.bias), self.shape)


@dataclass(frozen=True, eq=False)
class Readout(_Frozen):
    """Non-spiking output layer: accumulates delivered events (decaying by ``decay`` per
    step when it is leaky), adds ``bias`` once."""

    _ARRAYS = ("bias",)

    name: str
    shape: tuple[int, ...]
    bias: np.ndarray
    units_per_float: float = 1.0
    decay: float = 0.0


Pool = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
"""A sum pool's ``(kernel, stride, padding)``, each per spatial axis."""


@dataclass(frozen=True, eq=False)
class Factors(_Frozen):
    """A projection as the trained layer it deploys (DESIGN.md §2: the counting follows the
    deployed structure, a simulator may compute with any exact factorisation):

        y = out_scale ⊙ base(sumpool(in_scale ⊙ x))

    ``base``: the trained kernel ``(C_out, C_in/groups, kh, kw)`` (conv; its own stride and
    padding follow from the projection's, see :meth:`Projection.base_geometry`) or matrix
    ``(out, features)`` acting on the flattened pooled source (dense). Projections that
    deploy one trained layer (the summands of a residual sum) share it.
    ``pool``: a zero-padded *sum* pool the source goes through first (an average pool's
    ``1/k²`` is part of ``in_scale``), or None.
    ``in_scale``: broadcasts to the source shape (conv: a scalar or per channel
    ``(C, 1, 1)``), or None. ``out_scale``: per output channel (conv) or row (dense)
    ``(C_out,)``, or None. ``source_shape``: the source's shape (lays a dense projection's
    input scale and pool out along its columns). ``composition``: when ``base`` is no
    trained array but trained layers with no neuron between composed into one, the
    compiler's recipe for it (:class:`pseudosnn.compiler.passes.avgpool_fusion.Composition`;
    the artifact stores the recipe in place of ``base``), else None.
    """

    _ARRAYS = ("base", "in_scale", "out_scale")

    base: np.ndarray
    in_scale: np.ndarray | None = None
    out_scale: np.ndarray | None = None
    pool: Pool | None = None
    source_shape: tuple[int, ...] = ()
    composition: object | None = None


class _ComposedWeight:
    """``Projection.weight``: the array given, or, for a projection built from
    :class:`Factors` (``weight=None``), their composition, computed on first use and kept
    (``synapses.compose``). Executors that compute from the factors never compose it."""

    def __set_name__(self, owner, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj, objtype=None):
        if obj is None:
            return None  # the dataclass field's default
        w = obj.__dict__.get(self.slot)
        if w is None and obj.factors is not None:
            from pseudosnn.compiler.spiking.synapses import compose

            w = read_only(compose(obj))
            obj.__dict__[self.slot] = w
        return w

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True, eq=False)
class Projection(_Frozen):
    """Synapses from ``source`` to ``target``.

    ``kind="dense"``: ``weight`` is ``(target_size, source_size)`` acting on the flattened
    (C-order) source. ``kind="conv"``: ``weight`` is ``(C_out, C_in/groups, kh, kw)``
    acting on a ``(C, H, W)`` source with ``stride``/``padding``. With ``factors`` (float
    graphs) ``weight`` is None at construction and composed on first use; passing a
    ``weight`` (e.g. ``dataclasses.replace(pr, weight=w)``) drops the factors.
    """

    _ARRAYS = ("event_scale",)

    name: str
    source: str
    target: str
    kind: Literal["dense", "conv"]
    weight: np.ndarray | None = _ComposedWeight()
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    delay: int = 1
    weight_exp: int = 0
    event_scale: np.ndarray | None = None
    factors: Factors | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        given = self.__dict__.get("_weight")
        if given is not None:
            object.__setattr__(self, "weight", read_only(given))
            object.__setattr__(self, "factors", None)
        elif self.factors is None:
            raise GraphError(f"projection {self.name!r} has neither weights nor factors")

    @property
    def is_encoder(self) -> bool:
        """Reads the analog input: multiply-accumulates computed once per sample."""
        return self.source == INPUT

    def replaced(self, **changes) -> Projection:
        """``dataclasses.replace`` that keeps the factors (a plain ``replace`` reads
        ``weight``, i.e. composes it, and so drops them)."""
        if self.factors is not None and "weight" not in changes:
            changes["weight"] = None
        return replace(self, **changes)

    def times_source(self, f: float) -> Projection:
        """This projection applied to ``f·x`` (every source value scaled by ``f``)."""
        if self.factors is None:
            return replace(self, weight=self.weight * f)
        s = self.factors.in_scale
        return self.replaced(factors=replace(
            self.factors, in_scale=np.asarray(f if s is None else s * f, np.float64)))

    @cached_property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the deployed (composed) weight, without composing it."""
        f = self.factors
        if f is None:
            return tuple(int(d) for d in self.weight.shape)
        if self.kind == "dense":
            return (int(f.base.shape[0]), int(np.prod(f.source_shape)))
        (k1h, k1w), (s1h, s1w), _ = f.pool or ((1, 1), (1, 1), (0, 0))
        co, cg, kh, kw = f.base.shape
        return (int(co), int(cg), (kh - 1) * s1h + k1h, (kw - 1) * s1w + k1w)

    def base_geometry(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Stride and padding of ``factors.base`` (conv): the deployed conv is the pool
        ``(k1, s1, p1)`` then the base with ``(s2, p2)``, i.e. stride ``s1·s2``, padding
        ``p1 + p2·s1`` (``compiler/passes/avgpool_fusion``)."""
        pool = self.factors.pool if self.factors is not None else None
        if pool is None:
            return self.stride, self.padding
        _, s1, p1 = pool
        return (tuple(s // a for s, a in zip(self.stride, s1, strict=True)),
                tuple((p - b) // a for p, a, b in zip(self.padding, s1, p1, strict=True)))

    @cached_property
    def block_kernel(self) -> np.ndarray | None:
        """The kernel of a materialised conv constant on blocks that divide its stride (what
        the compiler makes of avgpool + conv before quantisation) as its block kernel, else
        None (:mod:`.synapses`). Computed once: the weights are read-only."""
        from pseudosnn.compiler.spiking.synapses import block_kernel

        if self.kind != "conv" or self.factors is not None:
            return None
        return block_kernel(self.weight, self.stride)

    def output_shape(self, source_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.kind == "dense":
            return (int(self.weight_shape[0]),)
        _, h, w = source_shape
        kh, kw = self.weight_shape[2:]
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return (int(self.weight_shape[0]), int(oh), int(ow))


@dataclass(frozen=True, eq=False)
class SpikePool(_Window, _Frozen):
    """Max pooling of population ``source``'s spikes: an OR over each ``kernel`` window
    (``stride``, zero ``padding``: padding never spikes), exact for binary events, one step
    late (:data:`.schedule.POOL_DELAY`). An event source for projections like a
    population: its train has the source's T per channel (``timesteps``: scalar or
    ``(C, 1, 1)``) and opens at ``start``. No synapses: it costs compares per event."""

    _ARRAYS = ("timesteps",)

    name: str
    source: str
    shape: tuple[int, ...]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    timesteps: np.ndarray
    start: int = 0


EventSource = Population | SpikePool


@dataclass(frozen=True, eq=False)
class SpikingGraph:
    """Input, populations (topological order), readout, projections and spike pools."""

    input: InputNode
    populations: tuple[Population, ...]
    readout: Readout
    projections: tuple[Projection, ...]
    fixed_point: bool = False
    meta: dict = field(default_factory=dict)
    pools: tuple[SpikePool, ...] = ()

    # --- look-ups -----------------------------------------------------------------
    def node(self, name: str) -> InputNode | Population | SpikePool | Readout:
        if name == self.input.name:
            return self.input
        if name == self.readout.name:
            return self.readout
        for p in (*self.populations, *self.pools):
            if p.name == name:
                return p
        raise KeyError(f"no node named {name!r} in the spiking graph")

    def event_source(self, name: str) -> EventSource:
        """The population or spike pool whose events a projection from ``name`` carries."""
        node = self.node(name)
        if not isinstance(node, Population | SpikePool):
            raise KeyError(f"{name!r} is not a population or a spike pool")
        return node

    def pools_of(self, name: str) -> list[SpikePool]:
        return [p for p in self.pools if p.source == name]

    def population(self, name: str) -> Population:
        node = self.node(name)
        if not isinstance(node, Population):
            raise KeyError(f"{name!r} is not a population")
        return node

    def incoming(self, name: str) -> list[Projection]:
        return [p for p in self.projections if p.target == name]

    def outgoing(self, name: str) -> list[Projection]:
        return [p for p in self.projections if p.source == name]

    def shape_of(self, name: str) -> tuple[int, ...]:
        return self.node(name).shape

    def to_networkx(self) -> nx.MultiDiGraph:
        g = nx.MultiDiGraph()
        g.add_node(self.input.name, node=self.input, kind="input")
        for p in self.populations:
            g.add_node(p.name, node=p, kind="population")
        g.add_node(self.readout.name, node=self.readout, kind="readout")
        for pool in self.pools:
            g.add_node(pool.name, node=pool, kind="pool")
            g.add_edge(pool.source, pool.name, key=f"{pool.name}/or", pool=pool)
        for pr in self.projections:
            g.add_edge(pr.source, pr.target, key=pr.name, projection=pr)
        return g

    def topological_populations(self) -> Iterator[Population]:
        yield from (s for s in self.topological_sources() if isinstance(s, Population))

    def topological_sources(self) -> Iterator[EventSource]:
        """Populations and spike pools in topological order."""
        order = list(nx.topological_sort(self.to_networkx()))
        by_name = {p.name: p for p in (*self.populations, *self.pools)}
        for name in order:
            if name in by_name:
                yield by_name[name]

    # --- schedule facts (the rule itself lives in .schedule) ------------------------
    @property
    def readout_step(self) -> int:
        """Step at which the readout's value is final (last delivery)."""
        from pseudosnn.compiler.spiking.schedule import readout_step

        return readout_step(self)

    @property
    def latency_steps(self) -> int:
        """Steps from the input's arrival until the readout is final, inclusive."""
        return self.readout_step + 1

    @property
    def pipeline_interval(self) -> int:
        """Steps between successive samples in a pipelined deployment: the longest
        time any one population is busy (accumulating, then integrating)."""
        return max([p.t_max for p in self.populations] or [1])

    def with_populations(self, populations: Iterable[Population]) -> SpikingGraph:
        return replace(self, populations=tuple(populations))

    def validate(self) -> None:
        validate(self)


def validate(graph: SpikingGraph) -> None:
    """Check the graph's invariants; raise :class:`GraphError` naming what broke."""
    names = [graph.input.name, graph.readout.name, *[p.name for p in graph.populations],
             *[p.name for p in graph.pools]]
    if len(set(names)) != len(names):
        raise GraphError(f"duplicate node names: {names}")
    g = graph.to_networkx()
    if not nx.is_directed_acyclic_graph(g):
        raise GraphError("the spiking graph has a cycle")
    for pop in graph.populations:
        T = np.asarray(pop.timesteps)
        if T.size == 0 or not np.issubdtype(T.dtype, np.integer) or np.any(T < 1):
            raise GraphError(f"population {pop.name!r}: T must be integers >= 1, got {T}")
        try:
            np.broadcast_to(T, pop.shape)
            np.broadcast_to(np.asarray(pop.bias), pop.shape)
        except ValueError as exc:
            raise GraphError(
                f"population {pop.name!r}: T or bias does not fit {pop.shape}") from exc
        problem = pop.dynamics.problem(pop.threshold, pop.v0)
        if problem:
            raise GraphError(f"population {pop.name!r}: {problem}")
        if graph.fixed_point and not all(float(d) * DECAY_UNITY == round(float(d) * DECAY_UNITY)
                                         for d in (pop.du, pop.dv)):
            raise GraphError(f"population {pop.name!r}: fixed-point decays must be multiples "
                             f"of 1/{DECAY_UNITY} (12 bits); recompile with quantisation")
        if not nx.has_path(g, graph.input.name, pop.name):
            raise GraphError(f"population {pop.name!r} is not reached from the input")
        if not nx.has_path(g, pop.name, graph.readout.name):
            raise GraphError(f"population {pop.name!r} does not reach the readout (dead)")
    for pool in graph.pools:
        _validate_pool(graph, pool)
    _validate_input(graph.input)
    for pr in graph.projections:
        _validate_projection(graph, pr)
    decay = graph.readout.decay
    if not 0.0 <= decay <= 1.0 or (decay and graph.fixed_point):
        raise GraphError(f"readout decay {decay:g} must lie in [0, 1] (and be 0 in fixed "
                         "point)")


def _validate_pool(graph: SpikingGraph, pool: SpikePool) -> None:
    try:
        src = graph.population(pool.source)
    except KeyError:
        raise GraphError(f"spike pool {pool.name!r} reads {pool.source!r}, which is not a "
                         "population") from None
    if len(src.shape) != 3:
        raise GraphError(f"spike pool {pool.name!r}: source {src.shape} is not (C, H, W)")
    if any(2 * p > k for p, k in zip(pool.padding, pool.kernel, strict=True)):
        raise GraphError(f"spike pool {pool.name!r}: padding {pool.padding} exceeds half "
                         f"the kernel {pool.kernel}")
    if pool_shape(src.shape, pool.kernel, pool.stride, pool.padding) != tuple(pool.shape):
        raise GraphError(f"spike pool {pool.name!r}: shape {pool.shape} is not the pooled "
                         f"source {src.shape}")
    t_src = src.timesteps_full()
    if not np.array_equal(np.broadcast_to(pool.timesteps, (src.shape[0], 1, 1)),
                          t_src[:, :1, :1]) or np.any(t_src != t_src[:, :1, :1]):
        raise GraphError(f"spike pool {pool.name!r}: the source's T must be one per channel "
                         "and equal the pool's")


def _validate_input(node: InputNode) -> None:
    if node.frames < 0 or (node.frames and node.stem is not None):
        raise GraphError("the input has a negative frame count or both event frames and an "
                         "analog stem (not supported)")
    if node.stem is not None and tuple(node.stem.shape) != tuple(node.shape):
        raise GraphError(f"the analog stem's output {node.stem.shape} is not the encoder "
                         f"input {node.shape}")


def _validate_projection(graph: SpikingGraph, pr: Projection) -> None:
    src_shape = graph.shape_of(pr.source)
    tgt_shape = graph.shape_of(pr.target)
    shape = pr.weight_shape
    if pr.factors is not None:
        _validate_factors(graph, pr, src_shape)
    elif not np.all(np.isfinite(pr.weight)):
        raise GraphError(f"projection {pr.name!r} has NaN or Inf weights")
    if pr.kind == "dense":
        expected = (int(np.prod(tgt_shape)), int(np.prod(src_shape)))
        if shape != expected:
            raise GraphError(f"projection {pr.name!r}: dense weight {shape} != {expected}")
    else:
        if len(src_shape) != 3 or len(shape) != 4 or shape[1] * pr.groups != src_shape[0]:
            raise GraphError(f"projection {pr.name!r}: conv weight {shape} does not fit "
                             f"source {src_shape} with groups={pr.groups}")
        if pr.output_shape(src_shape) != tuple(tgt_shape):
            raise GraphError(f"projection {pr.name!r}: output {pr.output_shape(src_shape)} "
                             f"!= target {tgt_shape}")
    if pr.event_scale is not None:
        if graph.fixed_point:
            raise GraphError(f"projection {pr.name!r}: event_scale is float-only")
        np.broadcast_to(pr.event_scale, src_shape)
    if graph.fixed_point and not pr.is_encoder:
        w = pr.weight if pr.factors is None else pr.factors.base
        if pr.factors is not None or not np.issubdtype(w.dtype, np.integer) or \
                w.min(initial=0) < WEIGHT_MIN or w.max(initial=0) > WEIGHT_MAX:
            raise GraphError(f"projection {pr.name!r}: fixed-point weights must be int8")
        if not WEIGHT_EXP_MIN <= pr.weight_exp <= WEIGHT_EXP_MAX:
            raise GraphError(f"projection {pr.name!r}: weight_exp {pr.weight_exp} "
                             f"outside [{WEIGHT_EXP_MIN}, {WEIGHT_EXP_MAX}]")
    if pr.is_encoder and pr.delay != 0:
        raise GraphError(f"encoder projection {pr.name!r} must have delay 0")
    if not pr.is_encoder and pr.delay < 1:
        raise GraphError(f"projection {pr.name!r}: synaptic delay must be >= 1")


def _validate_factors(graph: SpikingGraph, pr: Projection, src_shape: tuple[int, ...]) -> None:
    """The factors fit the source and compose to the projection's deployed geometry."""
    f = pr.factors
    if tuple(f.source_shape) != tuple(src_shape):
        raise GraphError(f"projection {pr.name!r}: factors for a source of {f.source_shape}, "
                         f"the source has {src_shape}")
    arrays = [a for a in (f.base, f.in_scale, f.out_scale) if a is not None]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise GraphError(f"projection {pr.name!r} has NaN or Inf factors")
    if f.in_scale is not None:
        try:
            np.broadcast_to(f.in_scale, src_shape)
        except ValueError as exc:
            raise GraphError(f"projection {pr.name!r}: in_scale {f.in_scale.shape} does not "
                             f"fit the source {src_shape}") from exc
        if pr.kind == "conv" and np.prod(np.shape(f.in_scale)[-2:] or (1,)) != 1:
            raise GraphError(f"projection {pr.name!r}: a conv's in_scale must be per channel")
    if f.out_scale is not None and f.out_scale.shape != (f.base.shape[0],):
        raise GraphError(f"projection {pr.name!r}: out_scale {f.out_scale.shape} != "
                         f"({f.base.shape[0]},)")
    if f.pool is None:
        return
    (k1h, k1w), (s1h, s1w), (p1h, p1w) = f.pool
    if pr.kind == "dense":
        if len(src_shape) != 3:
            raise GraphError(f"projection {pr.name!r}: a pooled dense projection needs a "
                             f"(C, H, W) source, got {src_shape}")
        c, h, w = src_shape
        pooled = c * ((h + 2 * p1h - k1h) // s1h + 1) * ((w + 2 * p1w - k1w) // s1w + 1)
        if f.base.shape[1] != pooled:
            raise GraphError(f"projection {pr.name!r}: base {f.base.shape} does not read the "
                             f"{pooled} pooled features")
        return
    (s2h, s2w), (p2h, p2w) = pr.base_geometry()
    if (s1h * s2h, s1w * s2w) != tuple(pr.stride) or (p1h + p2h * s1h, p1w + p2w * s1w) != \
            tuple(pr.padding) or min(s2h, s2w, p2h, p2w) < 0 or min(s2h, s2w) < 1:
        raise GraphError(f"projection {pr.name!r}: pool {f.pool} and the base conv do not "
                         f"compose to stride {pr.stride}, padding {pr.padding}")
