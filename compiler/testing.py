"""Small random spiking graphs for tests and benchmarks (torch-free).

``random_graph("mlp" | "cnn" | "residual", ...)`` builds a scheduled, valid graph with
heterogeneous T; ``stream=True`` makes every population after the first stream-coupled
with one shared T (the classic SNN); ``per_channel=True`` gives conv populations a T per
channel. ``"cnn"`` only: ``pool=True`` max-pools ``conv1``'s spikes (3x3, stride 2,
padding 1) before ``conv2``; ``stem=True`` puts an analog stem (conv, then a 3x3/2 max
pool) before the encoder; ``frames=F`` makes the input ``F`` event frames, streamed into
``conv1`` (``T = F``) with ``stream=True``, else their time mean drives it. Weights are
scaled so that populations fire at moderate rates.
:func:`with_dynamics` gives every population a leak, a hard reset or another comparison.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pseudosnn.compiler.spiking.graph import (
    AnalogStem,
    InputNode,
    Population,
    Projection,
    Readout,
    SpikePool,
    SpikingGraph,
)
from pseudosnn.compiler.spiking.schedule import schedule
from pseudosnn.compiler.spiking.semantics import Dynamics


def _pop(name, shape, T, rng, coupling="rate", bias_scale=0.1):
    return Population(
        name=name, shape=shape, timesteps=np.asarray(T, dtype=np.int64), threshold=1.0,
        bias=rng.normal(0, bias_scale, size=shape[:1] + (1,) * (len(shape) - 1)),
        v0=0.5, coupling=coupling,
    )


def _rate_fold(w: np.ndarray, T, depthwise: bool = False) -> np.ndarray:
    """Fold 1/T of the source into the weights (per-layer or per input channel; a
    depthwise conv's input channel is its output channel)."""
    T = np.asarray(T, dtype=np.float64)
    if T.ndim == 0:
        return w / T
    axis_shape = (-1, 1) if depthwise else (1, -1)
    return w / T.reshape(*axis_shape, *([1] * (w.ndim - 2)))


def _input(rng, stem: bool, frames: int) -> InputNode:
    """The (2, 8, 8) encoder input: plain, ``frames`` event frames, or the output of an
    analog stem (a 3x3 conv on a (2, 16, 16) image, then a 3x3/2 max pool)."""
    if not stem:
        return InputNode((2, 8, 8), frames=frames)
    return InputNode((2, 8, 8), stem=AnalogStem(
        in_shape=(2, 16, 16), pool_kernel=(3, 3), pool_stride=(2, 2), pool_padding=(1, 1),
        weight=rng.normal(0, 0.5, size=(2, 2, 3, 3)), bias=rng.normal(0, 0.2, size=2),
        padding=(1, 1)))


def random_graph(
    kind: str = "mlp", seed: int = 0, stream: bool = False, per_channel: bool = False,
    t_max: int = 8, pool: bool = False, stem: bool = False, frames: int = 0,
) -> SpikingGraph:
    rng = np.random.default_rng(seed)
    input_node = InputNode((2, 8, 8))

    def T_of(channels: int):
        if stream:
            return np.int64(t_max // 2)
        if per_channel:
            return rng.integers(1, t_max + 1, size=(channels, 1, 1))
        return np.int64(rng.integers(1, t_max + 1))

    coupling = "stream" if stream else "rate"
    pops, projs, pools = [], [], []
    if kind == "mlp":
        input_node = InputNode((16,))
        sizes = [24, 12]
        prev, prev_T = "input", None
        for i, n in enumerate(sizes):
            T = np.int64(t_max // 2) if stream else np.int64(rng.integers(1, t_max + 1))
            name = f"fc{i}"
            pops.append(_pop(name, (n,), T, rng, "rate" if i == 0 else coupling))
            fan_in = input_node.shape[0] if prev == "input" else sizes[i - 1]
            w = rng.normal(0, 1.5 / np.sqrt(fan_in), size=(n, fan_in))
            if prev != "input" and not stream:
                w = _rate_fold(w, prev_T)
            elif prev != "input" and stream:
                w = w / 2
            projs.append(Projection(f"{prev}->{name}", prev, name, "dense", w,
                                    delay=0 if prev == "input" else 1))
            prev, prev_T = name, T
        w = rng.normal(0, 1, size=(5, sizes[-1]))
        projs.append(Projection(f"{prev}->out", prev, "out", "dense", _rate_fold(w, prev_T)))
        readout = Readout("out", (5,), rng.normal(0, 0.1, size=(5,)))
    elif kind in ("cnn", "residual"):
        c1, c2 = 4, 6
        streamed = bool(frames) and stream  # else the frames' time mean drives conv1
        T1, T2 = (np.int64(frames),) * 2 if streamed else (T_of(c1), T_of(c2))
        input_node = _input(rng, stem, frames)
        pops.append(_pop("conv1", (c1, 8, 8), T1, rng, "stream" if streamed else "rate"))
        projs.append(Projection("input->conv1", "input", "conv1", "conv",
                                rng.normal(0, 0.5, size=(c1, 2, 3, 3)), padding=(1, 1), delay=0))
        pops.append(_pop("conv2", (c2, 4, 4), T2, rng, coupling))
        w2 = rng.normal(0, 0.6, size=(c2, c1, 3, 3))
        w2 = w2 / 2 if stream else _rate_fold(w2, T1)
        if pool:  # conv1's spikes max-pooled 3x3/2, then a stride-1 conv
            pools.append(SpikePool("pool1", "conv1", (c1, 4, 4), (3, 3), (2, 2), (1, 1),
                                   np.broadcast_to(T1, (c1, 1, 1)).copy() if np.ndim(T1)
                                   else T1))
            projs.append(Projection("pool1->conv2", "pool1", "conv2", "conv", w2,
                                    padding=(1, 1)))
        else:
            projs.append(Projection("conv1->conv2", "conv1", "conv2", "conv", w2,
                                    stride=(2, 2), padding=(1, 1)))
        last, last_T, last_shape = "conv2", T2, (c2, 4, 4)
        if kind == "residual":
            T3 = T_of(c2)
            pops.append(_pop("conv3", (c2, 4, 4), T3, rng, coupling))
            w3 = rng.normal(0, 0.5, size=(c2, c2, 3, 3))
            projs.append(Projection("conv2->conv3", "conv2", "conv3", "conv",
                                    w3 / 2 if stream else _rate_fold(w3, T2), padding=(1, 1)))
            # shortcut: the residual add is a second projection into conv3 ...
            ws = rng.normal(0, 0.5, size=(c2, c1, 1, 1))
            if not stream:
                projs.append(Projection("conv1->conv3", "conv1", "conv3", "conv",
                                        _rate_fold(ws, T1), stride=(2, 2)))
            # ... and an identity (depthwise 1x1) from conv2 into conv4.
            T4 = T_of(c2)
            pops.append(_pop("conv4", (c2, 4, 4), T4, rng, coupling))
            w4 = rng.normal(0, 0.5, size=(c2, c2, 3, 3))
            projs.append(Projection("conv3->conv4", "conv3", "conv4", "conv",
                                    w4 / 2 if stream else _rate_fold(w4, T3), padding=(1, 1)))
            ident = np.ones((c2, 1, 1, 1))
            projs.append(Projection("conv2->conv4", "conv2", "conv4", "conv",
                                    ident / 2 if stream else _rate_fold(ident, T2, depthwise=True),
                                    groups=c2, delay=2 if stream else 1))  # align the skip
            last, last_T = "conv4", T4
        n = int(np.prod(last_shape))
        w = rng.normal(0, 1 / np.sqrt(n), size=(5, n))
        T_flat = np.broadcast_to(np.asarray(last_T, dtype=np.float64), last_shape).reshape(-1)
        projs.append(Projection(f"{last}->out", last, "out", "dense", w / T_flat[None, :]))
        readout = Readout("out", (5,), rng.normal(0, 0.1, size=(5,)))
    else:
        raise ValueError(f"unknown random graph kind {kind!r}; use mlp, cnn or residual")
    graph = SpikingGraph(input_node, tuple(pops), readout, tuple(projs),
                         meta={"source": f"random_graph({kind!r}, seed={seed})"},
                         pools=tuple(pools))
    graph = schedule(graph)
    graph.validate()
    return graph


def with_dynamics(graph: SpikingGraph, dyn: Dynamics, v0: float | None = None) -> SpikingGraph:
    """``graph`` with every population's dynamics (and ``v0``, if given) replaced."""
    pops = [replace(p, du=dyn.du, dv=dyn.dv, reset=dyn.reset, v_reset=dyn.v_reset,
                    fire=dyn.fire, v0=p.v0 if v0 is None else v0) for p in graph.populations]
    out = graph.with_populations(pops)
    out.validate()
    return out


def graph_differences(a: SpikingGraph, b: SpikingGraph) -> list[str]:
    """What differs between two graphs, compared as the artifact stores them (every record
    field and every array, dtype and shape included); empty when they are the same."""
    from pseudosnn.compiler.artifact import graph_to_records

    (desc_a, arr_a), (desc_b, arr_b) = graph_to_records(a), graph_to_records(b)
    diffs = [f"record {k}" for k in sorted(set(desc_a) | set(desc_b))
             if desc_a.get(k) != desc_b.get(k)]
    diffs += [f"array {k}" for k in sorted(set(arr_a) | set(arr_b))
              if k not in arr_a or k not in arr_b or arr_a[k].dtype != arr_b[k].dtype
              or arr_a[k].shape != arr_b[k].shape or not np.array_equal(arr_a[k], arr_b[k])]
    return diffs
