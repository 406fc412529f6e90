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
  *idle* ``size · latency − active`` (the population exists for the whole latency).
* **compares** of max pooling (no synapses, no SOP): an event is compared into every
  window that holds it, its *pool fan-out* (the window fan-out above, padding taps
  excluded). A spike pool: ``Σ_i n_i · poolfan_i`` over its source's spike counts; the
  analog stem of the encoder: every value of the map it pools, once per sample.
* With event frames, an encoder projection into a target that gets one frame per step
  costs its MACs once per frame.

Trained network (the ANN baseline, before any fusion, DESIGN.md §2):

* **MACs** of a conv or linear layer: its structural synapses (as above, on the layer's
  own geometry); **adds** of an average pool: its structural window taps; of a residual
  sum of ``m`` terms: ``(m − 1) · size``. BatchNorm folds into the conv, an activation
  costs no MAC.
* **compares** of a max pool: its structural window taps (as a spike pool's above).
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


def fanout(pr: Projection, source_shape: tuple[int, ...]) -> np.ndarray:
    """Structural fan-out of every source neuron of ``pr`` (an array of ``source_shape``)."""
    if pr.kind == "dense":
        return np.full(source_shape, pr.weight.shape[0], dtype=np.int64)
    spatial = window_fanout(source_shape[1:], pr.weight.shape[2:], pr.stride, pr.padding)
    per_group = pr.weight.shape[0] // pr.groups
    return np.broadcast_to(spatial * per_group, source_shape).astype(np.int64)


def synapses(pr: Projection, source_shape: tuple[int, ...]) -> int:
    """Structural synapses of a projection (one MAC each when the input is analog)."""
    return int(fanout(pr, source_shape).sum())


def fan_in(graph: SpikingGraph, name: str) -> int:
    """Incoming synapses of one neuron of ``name`` (the kernel or row size, summed over its
    projections; interior neurons of a conv)."""
    return sum(int(np.prod(pr.weight.shape[1:])) for pr in graph.incoming(name))


# --- the deployed network ----------------------------------------------------------------
class Fanouts:
    """Fan-out arrays of a graph's projections, computed once per graph."""

    def __init__(self, graph: SpikingGraph):
        self.graph = graph
        self._by_name: dict[str, np.ndarray] = {}

    def __getitem__(self, pr: Projection) -> np.ndarray:
        if pr.name not in self._by_name:
            self._by_name[pr.name] = fanout(pr, self.graph.shape_of(pr.source))
        return self._by_name[pr.name]


def sops(graph: SpikingGraph, counts: Mapping[str, np.ndarray],
         fanouts: Fanouts | None = None) -> dict[str, int]:
    """SOPs of every non-encoder projection, ``Σ_i n_i·fanout_i``, summed over the batch
    (``counts[pop]``: spike counts ``(B, *shape)`` or already summed ``(*shape)``)."""
    fanouts = fanouts or Fanouts(graph)
    out = {}
    for pr in graph.projections:
        if pr.is_encoder:
            continue
        n = np.asarray(counts[pr.source])
        shape = graph.shape_of(pr.source)
        n = n.reshape(-1, *shape).sum(axis=0) if n.shape != tuple(shape) else n
        out[pr.name] = int(np.sum(n * fanouts[pr]))
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
    ``linear``, ``add`` (``terms`` summands), ``flatten``. Shapes are per sample."""

    name: str
    op: LayerOp
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    terms: int = 1

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
    k, s, p = [1, 1], [1, 1], [0, 0]
    channels = 1  # pooling alone keeps the channel; a conv reaches C_out/groups of them
    for layer in chain:
        if layer.op not in ("conv", "avgpool", "maxpool"):
            raise ValueError(f"layer {layer.name!r} ({layer.op}) cannot be part of a "
                             "projection chain")
        for a in range(2):
            k[a] += (layer.kernel[a] - 1) * s[a]
            p[a] += layer.padding[a] * s[a]
            s[a] *= layer.stride[a]
        if layer.op == "conv":
            channels = layer.out_shape[0] // layer.groups
    spatial = window_fanout(source_shape[1:], k, s, p)
    return np.broadcast_to(spatial * channels, source_shape).astype(np.int64)
