"""Counting (DESIGN.md §2 "Counting"): every count of the toolchain, defined once.

Deployed network (the spiking graph):

* **fan-out** of a source neuron through a projection: the structural targets one event
  reaches. Dense: every target. Conv: ``C_out/groups`` times, per spatial axis, the output
  positions whose kernel window covers the pixel (fewer at the borders; padding taps are
  not synapses): ``#{o : 0 <= y + p - o·s < k}``.
* **SOPs** of a projection: ``Σ_i n_i · fanout_i`` (each delivered event times its
  structural fan-out), ``n_i`` the source's spike counts.
* **encoder MACs** per sample: the structural synapses of every encoder projection,
  ``Σ_pixels fanout`` on the analog input (computed once per sample).
* **neuron updates** per sample: *active* ``Σ_i T_i`` (neuron-steps inside the windows),
  *idle* ``size · latency − active`` (the population exists for the whole latency);
  *state updates* (membrane read and written): the active ones for non-leaky neurons
  (their state is untouched outside the window), every step of the latency for leaky ones.
* **leak multiplies** per sample: ``decays · size · latency``, ``decays`` the decay
  multiplies of one update (:attr:`.semantics.Dynamics.decays`: one for ``u`` when
  ``0 < du < 1``, one for ``v`` when ``dv > 0``). Idle neurons leak too: a neuromorphic
  core (Loihi) updates every compartment at every step, decays included, whether or not
  the neuron receives input, so every neuron-step of the latency costs its decays.
* **compares** of max pooling (no synapses, no SOP): an event is compared into every
  window that holds it, its *pool fan-out* (the window fan-out above, padding taps
  excluded). A spike pool: ``Σ_i n_i · poolfan_i`` over its source's spike counts; the
  analog stem of the encoder: every value of the map it pools, once per sample.
* With event frames, an encoder projection into a target that gets one frame per step
  costs its MACs once per frame.
* per deployed layer (:class:`LayerCounts`, what the energy model prices): events in (one
  per source spike per incoming projection, read from the layer's input queue), SOPs,
  encoder layers, neuron updates, spikes out, stored weights, biases and state words,
  ``leak_multiplies``; ``compares``: a spike pool's belong to its source population (the
  layer whose events it pools), the analog stem's to the first population the encoder
  feeds, with the stem's conv among that layer's encoders.

Trained network (the ANN baseline, before any fusion, DESIGN.md §2):

* **MACs** of a conv or linear layer: its structural synapses (as above, on the layer's
  own geometry); **adds** of an average pool: its structural window taps; of a residual
  sum of ``m`` terms: ``(m − 1) · size``. BatchNorm folds into the conv, an activation
  costs no MAC.
* **compares** of a max pool: its structural window taps (as a spike pool's above).
* stored **weights** of a conv ``C_out · C_in/groups · k_h · k_w``, of a linear layer
  ``in · out``; **biases** ``C_out`` / ``out``; **address adds** ``in + out (+ C_out·k_h·k_w
  for a conv)`` (Lemaire et al. 2022: one add per input and output address, plus one per
  kernel weight of a conv);
* data **accesses** of a layer run as an ANN, per sample, for two dataflows:
  *no reuse* (Lemaire et al. 2022): a conv reads one input and one weight per MAC, a
  linear layer reads each input once and one weight per MAC, one bias read per output; a
  pool reads one input per window tap, a residual sum every term; every output is written
  once. *Maximal reuse* (the bound of Dampfhoffer et al. 2023): every input, weight and
  bias is read once and every output written once.
* the paper's **FLOPs** (its cost, kept as the paper defines it): conv
  ``out_numel · C_in/groups · k_h · k_w`` (padding taps included), linear ``in · out``,
  average pooling ``in_numel``, max pooling 0 (the paper's ``zero_ops``).

Chains of window ops with no neuron in between (avg-pool + conv, conv + conv; a max pool
of spikes reaches its windows like an average pool) are counted as the one fused
projection the compiler deploys: ``(k1, s1, p1)`` then ``(k2, s2, p2)``
is the window ``(k1 + (k2 − 1)·s1, s1·s2, p1 + p2·s1)`` (``compiler/passes/avgpool_fusion``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pseudosnn.compiler.spiking.graph import Population, Projection, SpikePool, SpikingGraph
from pseudosnn.compiler.spiking.synapses import frame_targets


# --- geometry --------------------------------------------------------------------------
def axis_fanout(size: int, kernel: int, stride: int, padding: int, out: int) -> np.ndarray:
    """For each input index ``y < size``: ``#{o in [0, out): 0 <= y + p − o·s < k}``."""
    y = np.arange(size)[:, None]
    o = np.arange(out)[None, :]
    offset = y + padding - o * stride
    return ((offset >= 0) & (offset < kernel)).sum(axis=1).astype(np.int64)


def window_fanout(hw: tuple[int, int], kernel, stride, padding) -> np.ndarray:
    """Spatial fan-out ``(H, W)`` of a window op (conv or pooling) on an ``H x W`` map."""
    out = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(hw, kernel, stride, padding,
                                                           strict=True)]
    per = [axis_fanout(n, k, s, p, o)
           for n, k, s, p, o in zip(hw, kernel, stride, padding, out, strict=True)]
    return per[0][:, None] * per[1][None, :]


def position_fanout(pr: Projection, source_shape: tuple[int, ...]) -> np.ndarray:
    """Structural fan-out of a source neuron of ``pr`` by its position, the same in every
    channel: ``(H, W)`` for a conv (window fan-out times output channels per group), a
    scalar for a dense projection (every neuron reaches every row)."""
    if pr.kind == "dense":
        return np.asarray(pr.weight_shape[0], dtype=np.int64)
    spatial = window_fanout(source_shape[1:], pr.weight_shape[2:], pr.stride, pr.padding)
    return spatial * (pr.weight_shape[0] // pr.groups)


def fanout(pr: Projection, source_shape: tuple[int, ...]) -> np.ndarray:
    """Structural fan-out of every source neuron of ``pr`` (an array of ``source_shape``)."""
    return np.broadcast_to(position_fanout(pr, source_shape), source_shape).astype(np.int64)


def synapses(pr: Projection, source_shape: tuple[int, ...]) -> int:
    """Structural synapses of a projection (one MAC each when the input is analog)."""
    return int(fanout(pr, source_shape).sum())


def fan_in(graph: SpikingGraph, name: str) -> int:
    """Incoming synapses of one neuron of ``name`` (the kernel or row size, summed over its
    projections; interior neurons of a conv)."""
    return sum(int(np.prod(pr.weight_shape[1:])) for pr in graph.incoming(name))


# --- the deployed network ----------------------------------------------------------------
class Fanouts:
    """:func:`position_fanout` of a graph's projections, computed once per graph."""

    def __init__(self, graph: SpikingGraph):
        self.graph = graph
        self._by_name: dict[str, np.ndarray] = {}

    def __getitem__(self, pr: Projection) -> np.ndarray:
        if pr.name not in self._by_name:
            self._by_name[pr.name] = position_fanout(pr, self.graph.shape_of(pr.source))
        return self._by_name[pr.name]


def sops(graph: SpikingGraph, counts: Mapping[str, np.ndarray],
         fanouts: Fanouts | None = None) -> dict[str, int]:
    """SOPs of every non-encoder projection, ``Σ_i n_i·fanout_i``, summed over the batch
    (``counts[pop]``: spike counts ``(B, *shape)`` or already summed ``(*shape)``); the
    fan-out being the same in every channel, ``Σ_pos (Σ_{b,c} n)·position_fanout``."""
    fanouts = fanouts or Fanouts(graph)
    summed: dict[tuple[str, int], np.ndarray] = {}  # counts summed over batch (and channels)
    out = {}
    for pr in graph.projections:
        if pr.is_encoder:
            continue
        fan = fanouts[pr]
        key = (pr.source, fan.ndim)
        if key not in summed:
            shape = graph.shape_of(pr.source)
            n = np.asarray(counts[pr.source])
            summed[key] = n.reshape(-1, *shape[len(shape) - fan.ndim:]).sum(axis=0,
                                                                           dtype=np.int64)
        out[pr.name] = int(np.sum(summed[key] * fan))
    return out


def encoder_macs(graph: SpikingGraph) -> int:
    """Multiply-accumulates of the encoder for one sample (structural): the analog stem's
    conv, then every encoder projection (once per frame into a frame-fed target)."""
    stem, frames = graph.input.stem, max(graph.input.frames, 1)
    framed = frame_targets(graph)
    macs = 0
    if stem is not None and stem.weight is not None:  # a conv's structural synapses
        w = stem.weight
        spatial = window_fanout(stem.in_shape[1:], w.shape[2:], stem.stride, stem.padding)
        macs += int(spatial.sum()) * stem.in_shape[0] * (w.shape[0] // stem.groups)
    return macs + sum(synapses(pr, graph.input.shape) * (frames if pr.target in framed else 1)
                      for pr in graph.projections if pr.is_encoder)


def pool_fanout(pool: SpikePool, source_shape: tuple[int, ...]) -> np.ndarray:
    """Windows of ``pool`` that hold each source neuron (its compares per event)."""
    spatial = window_fanout(source_shape[1:], pool.kernel, pool.stride, pool.padding)
    return np.broadcast_to(spatial, source_shape).astype(np.int64)


def pool_compares(graph: SpikingGraph, counts: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Compares of every spike pool, ``Σ_i n_i·poolfan_i`` over its source's spike counts,
    summed over the batch (``counts`` as in :func:`sops`)."""
    out = {}
    for pool in graph.pools:
        shape = graph.shape_of(pool.source)
        n = np.asarray(counts[pool.source])
        n = n.reshape(-1, *shape).sum(axis=0) if n.shape != tuple(shape) else n
        out[pool.name] = int(np.sum(n * pool_fanout(pool, shape)))
    return out


def encoder_compares(graph: SpikingGraph) -> int:
    """Compares of the encoder's analog max pool for one sample (0 without a stem)."""
    stem = graph.input.stem
    if stem is None:
        return 0
    shape = stem.conv_shape
    return int(window_fanout(shape[1:], stem.pool_kernel, stem.pool_stride,
                             stem.pool_padding).sum()) * shape[0]


def active_updates(pop: Population) -> int:
    """Neuron-steps inside the windows of one sample: ``Σ_i T_i``."""
    return int(pop.timesteps_full().sum())


def neuron_updates(graph: SpikingGraph) -> dict[str, tuple[int, int]]:
    """Per population and per sample: ``(active, idle)`` neuron updates."""
    steps = graph.latency_steps
    return {p.name: (active_updates(p), p.size * steps - active_updates(p))
            for p in graph.populations}


def leak_multiplies(graph: SpikingGraph) -> dict[str, int]:
    """Per population and per sample: the decay multiplies of its updates, active and idle
    (module docstring); 0 for integrate-and-fire populations. A leaky readout (an imported
    LI node) multiplies once per neuron and step."""
    steps = graph.latency_steps
    out = {p.name: p.dynamics.decays * p.size * steps for p in graph.populations}
    if graph.readout.decay:  # a leaky readout decays its accumulator at every step
        out[graph.readout.name] = math.prod(graph.readout.shape) * steps
    return out


def bias_entries(shape: tuple[int, ...]) -> int:
    """Stored biases of a population or readout: one per channel of a ``(C, H, W)`` layer
    (a conv's bias), one per neuron of a flat one."""
    return shape[0] if len(shape) == 3 else math.prod(shape)


def projection_layer(graph: SpikingGraph, pr: Projection) -> Layer:
    """A deployed projection as a :class:`Layer` (its geometry; what an encoder computes
    densely)."""
    src, dst = tuple(graph.shape_of(pr.source)), tuple(graph.shape_of(pr.target))
    if pr.kind == "dense":
        return Layer(pr.name, "linear", (math.prod(src),), (math.prod(dst),))
    return Layer(pr.name, "conv", src, dst, kernel=tuple(pr.weight_shape[2:]),
                 stride=tuple(pr.stride), padding=tuple(pr.padding), groups=pr.groups)


@dataclass(frozen=True)
class LayerCounts:
    """One deployed layer (a population or the readout) per sample: what it does and what
    it stores. Each event delivered by an incoming projection is read once from the
    layer's input queue (``events_in``; ``conv_events_in`` through conv projections);
    ``synapses``: the structural synapses of the incoming spiking projections;
    ``encoders`` are computed densely ``encoder_passes`` times per sample (once here);
    ``state_updates`` read and write the membrane."""

    name: str
    kind: Literal["population", "readout"]
    neurons: int
    weights: int
    biases: int
    synapses: int = 0
    sops: float = 0.0
    events_in: float = 0.0
    conv_events_in: float = 0.0
    encoders: tuple[Layer, ...] = ()
    encoder_passes: int = 1
    active_updates: float = 0.0
    idle_updates: float = 0.0
    state_updates: float = 0.0
    spikes_out: float = 0.0
    compares: float = 0.0
    leak_multiplies: float = 0.0


def deployed_layers(graph: SpikingGraph, spikes: Mapping[str, float],
                    sops: Mapping[str, float], compares: Mapping[str, float] | None = None
                    ) -> list[LayerCounts]:
    """Per-sample :class:`LayerCounts` of every population (topological order) and the
    readout, from per-sample ``spikes`` per population (and spike pool), ``sops`` per
    projection and ``compares`` per spike pool and analog stem (:func:`pool_compares`,
    :func:`encoder_compares`)."""
    updates = neuron_updates(graph)
    leak = leak_multiplies(graph)
    owner = _compare_owners(graph)
    own_compares: dict[str, float] = {}
    for name, c in (compares or {}).items():
        own_compares[owner[name]] = own_compares.get(owner[name], 0.0) + float(c)
    stem = graph.input.stem
    stem_layer = () if stem is None or stem.weight is None else (Layer(
        stem.name, "conv", tuple(stem.in_shape), tuple(stem.conv_shape),
        kernel=tuple(stem.weight.shape[2:]), stride=tuple(stem.stride),
        padding=tuple(stem.padding), groups=stem.groups),)
    framed = frame_targets(graph)
    out = []
    for node in [*graph.topological_populations(), graph.readout]:
        incoming = graph.incoming(node.name)
        spiking = [pr for pr in incoming if not pr.is_encoder]
        is_pop = node is not graph.readout
        active, idle = updates[node.name] if is_pop else (0, 0)
        encoders = tuple(projection_layer(graph, pr) for pr in incoming if pr.is_encoder)
        if stem is not None and owner.get(stem.name) == node.name:
            encoders = stem_layer + encoders
        out.append(LayerCounts(
            name=node.name, kind="population" if is_pop else "readout",
            neurons=math.prod(node.shape),
            weights=sum(math.prod(pr.weight_shape) for pr in incoming),
            biases=bias_entries(tuple(node.shape)),
            synapses=sum(synapses(pr, graph.shape_of(pr.source)) for pr in spiking),
            sops=float(sum(sops.get(pr.name, 0) for pr in spiking)),
            events_in=float(sum(spikes[pr.source] for pr in spiking)),
            conv_events_in=float(sum(spikes[pr.source] for pr in spiking if pr.kind == "conv")),
            encoders=encoders, encoder_passes=max(graph.input.frames, 1)
            if node.name in framed else 1,
            active_updates=active, idle_updates=idle,
            state_updates=active + idle if leak.get(node.name) else active,
            leak_multiplies=float(leak.get(node.name, 0)),
            spikes_out=float(spikes[node.name]) if is_pop else 0.0,
            compares=own_compares.get(node.name, 0.0)))
    return out


def _compare_owners(graph: SpikingGraph) -> dict[str, str]:
    """The deployed layer that owns each spike pool's compares (its source population)
    and the analog stem's (the first layer the encoder feeds)."""
    owners = {p.name: p.source for p in graph.pools}
    if graph.input.stem is not None:
        fed = {pr.target for pr in graph.projections if pr.is_encoder}
        owners[graph.input.stem.name] = next(
            n.name for n in [*graph.topological_populations(), graph.readout] if n.name in fed)
    return owners


def sops_upper_bound(graph: SpikingGraph, pop: Population | SpikePool) -> int:
    """SOPs per sample caused by ``pop`` (a population or spike pool) if every neuron
    fired at every step of its window: ``Σ_i T_i · fanout_i``."""
    fan = sum((fanout(pr, pop.shape) for pr in graph.outgoing(pop.name)),
              np.zeros(pop.shape, np.int64))
    return int(np.sum(fan * pop.timesteps_full()))


# --- the trained network ------------------------------------------------------------------
LayerOp = Literal["conv", "linear", "avgpool", "maxpool", "add", "flatten"]


@dataclass(frozen=True)
class Layer:
    """One layer of the trained network, as far as counting needs it: ``conv``,
    ``avgpool`` and ``maxpool`` (``kernel``/``stride``/``padding`` per axis, ``groups``),
    ``linear``, ``add`` (``terms`` summands), ``flatten``. Shapes are per sample. ``reads``:
    the neurons (or ``"input"``, the analog image) whose outputs make up the layer's input
    through pooling, flatten and sums (empty: the input is another layer's accumulated
    sum); ``feeds``: the neuron its output drives ("" for the readout)."""

    name: str
    op: LayerOp
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    terms: int = 1
    reads: tuple[str, ...] = ()
    feeds: str = ""

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: Mapping) -> Layer:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def layer_ops(layer: Layer) -> dict[str, int]:
    """``{"macs", "adds"}`` (and ``"compares"`` of a max pool) of one trained layer for one
    sample (definitions above)."""
    if layer.op == "maxpool":
        spatial = window_fanout(layer.in_shape[1:], layer.kernel, layer.stride, layer.padding)
        return {"macs": 0, "adds": 0, "compares": int(spatial.sum()) * layer.in_shape[0]}
    if layer.op == "conv":
        spatial = window_fanout(layer.in_shape[1:], layer.kernel, layer.stride, layer.padding)
        per_group = layer.out_shape[0] // layer.groups
        return {"macs": int(spatial.sum()) * layer.in_shape[0] * per_group, "adds": 0}
    if layer.op == "linear":
        return {"macs": math.prod(layer.in_shape) * math.prod(layer.out_shape), "adds": 0}
    if layer.op == "avgpool":
        spatial = window_fanout(layer.in_shape[1:], layer.kernel, layer.stride, layer.padding)
        return {"macs": 0, "adds": int(spatial.sum()) * layer.in_shape[0]}
    if layer.op == "add":
        return {"macs": 0, "adds": (layer.terms - 1) * math.prod(layer.out_shape)}
    return {"macs": 0, "adds": 0}


def ann_ops(layers: Sequence[Layer]) -> dict[str, int]:
    """Total ``{"macs", "adds", "compares"}`` per sample of the trained network run as an
    ANN."""
    per = [layer_ops(layer) for layer in layers]
    return {k: sum(p.get(k, 0) for p in per) for k in ("macs", "adds", "compares")}


def layer_weights(layer: Layer) -> int:
    """Stored weights of a conv or linear layer (0 for the others)."""
    if layer.op == "conv":
        kh, kw = layer.kernel
        return layer.out_shape[0] * (layer.in_shape[0] // layer.groups) * kh * kw
    if layer.op == "linear":
        return math.prod(layer.in_shape) * math.prod(layer.out_shape)
    return 0


def layer_biases(layer: Layer) -> int:
    """Stored biases of a conv (one per output channel) or linear layer (one per output)."""
    return {"conv": layer.out_shape[0], "linear": math.prod(layer.out_shape)}.get(layer.op, 0)


def address_adds(layer: Layer) -> int:
    """Address arithmetic of a layer evaluated densely (Lemaire et al. 2022): one add per
    input and per output address, plus one per kernel weight of a conv."""
    if layer.op == "flatten":
        return 0
    n = math.prod(layer.in_shape) + math.prod(layer.out_shape)
    return n + layer.out_shape[0] * math.prod(layer.kernel) if layer.op == "conv" else n


def ann_accesses(layer: Layer, reuse: bool = False) -> dict[str, int]:
    """``{"input_reads", "weight_reads", "bias_reads", "output_writes"}`` of a layer run as
    an ANN for one sample; ``reuse``: maximal reuse instead of none (module docstring)."""
    if layer.op == "flatten":
        return dict.fromkeys(("input_reads", "weight_reads", "bias_reads", "output_writes"), 0)
    x, y = math.prod(layer.in_shape), math.prod(layer.out_shape)
    ops = layer_ops(layer)
    if reuse:
        reads = x * layer.terms if layer.op == "add" else x
        weights, biases = layer_weights(layer), layer_biases(layer)
    else:
        reads = {"conv": ops["macs"], "linear": x, "avgpool": ops["adds"],
                 "maxpool": ops.get("compares", 0), "add": layer.terms * y}[layer.op]
        weights, biases = ops["macs"], y if layer.op in ("conv", "linear") else 0
    return {"input_reads": reads, "weight_reads": weights, "bias_reads": biases,
            "output_writes": y}


def paper_flops(layer: Layer) -> int:
    """The paper's FLOPs of one layer (padding taps included; see the module docstring)."""
    if layer.op == "conv":
        kh, kw = layer.kernel
        return math.prod(layer.out_shape) * (layer.in_shape[0] // layer.groups) * kh * kw
    if layer.op == "linear":
        return math.prod(layer.in_shape) * math.prod(layer.out_shape)
    if layer.op == "avgpool":
        return math.prod(layer.in_shape)
    return 0


def chain_fanout(source_shape: tuple[int, ...], chain: Sequence[Layer]) -> np.ndarray:
    """Fan-out of every source neuron through a chain of layers with no neuron in between,
    counted on the one projection the compiler deploys for it (window ops compose as in
    the module docstring; a flatten + linear reaches every output; an empty chain is an
    identity shortcut, fan-out 1)."""
    if not chain:
        return np.ones(source_shape, dtype=np.int64)
    if any(layer.op == "linear" for layer in chain):
        return np.full(source_shape, math.prod(chain[-1].out_shape), dtype=np.int64)
    k, s, p = _window(chain)
    convs = [layer for layer in chain if layer.op == "conv"]
    # pooling alone keeps the channel; a conv reaches C_out/groups of them
    channels = convs[-1].out_shape[0] // convs[-1].groups if convs else 1
    spatial = window_fanout(source_shape[1:], k, s, p)
    return np.broadcast_to(spatial * channels, source_shape).astype(np.int64)


def _window(chain: Sequence[Layer]) -> tuple[list[int], list[int], list[int]]:
    """``(kernel, stride, padding)`` of the one window op a chain of convs and pools is."""
    k, s, p = [1, 1], [1, 1], [0, 0]
    for layer in chain:
        if layer.op not in ("conv", "avgpool", "maxpool"):
            raise ValueError(f"layer {layer.name!r} ({layer.op}) cannot be part of a "
                             "projection chain")
        for a in range(2):
            k[a] += (layer.kernel[a] - 1) * s[a]
            p[a] += layer.padding[a] * s[a]
            s[a] *= layer.stride[a]
    return k, s, p


def chain_projection(source_shape: tuple[int, ...], chain: Sequence[Layer]
                     ) -> tuple[Literal["conv", "dense"], int]:
    """``(kind, weights)`` of the one projection the compiler deploys for a chain: an empty
    chain is an identity (a depthwise 1x1 conv of ones, or an identity matrix when flat);
    a chain with a linear layer one dense matrix ``out x in``; pools followed by one conv
    keep the conv's groups; other window chains compose into one full conv
    (``compiler/passes/avgpool_fusion``, ``compiler/passes/residual``). A max pool is no
    part of a projection (a spike pool is its own node, an analog one runs in the encoder):
    the projection is what follows the last one."""
    pools = [i for i, layer in enumerate(chain) if layer.op == "maxpool"]
    if pools:
        return chain_projection(chain[pools[-1]].out_shape, chain[pools[-1] + 1:])
    n = math.prod(source_shape)
    if not chain:
        return ("conv", source_shape[0]) if len(source_shape) == 3 else ("dense", n * n)
    if any(layer.op == "linear" for layer in chain):
        return "dense", n * math.prod(chain[-1].out_shape)
    kh, kw = _window(chain)[0]
    convs = [layer for layer in chain if layer.op == "conv"]
    groups = convs[0].groups if len(convs) == 1 and chain[-1] is convs[0] else 1
    return "conv", chain[-1].out_shape[0] * (source_shape[0] // groups) * kh * kw
