"""Spiking graph -> connected Lava processes, run, and read back (Lava venv only).

Mapping (compiler/graph.py semantics, 0-indexed clock = Lava ``time_step - 1``):

* population -> :class:`PseudoSNPopulation`; readout -> :class:`ReadoutAccumulator`;
  spike pool -> :class:`SpikePool` (receives its source's spikes, sends the OR per window
  one step later: ``schedule.POOL_DELAY``);
* encoder projections (delay 0) -> one :class:`CurrentSource` per target, driving the
  precomputed current ``encoder_currents`` (the analog stem host side; fixed point:
  ``encode_fixed`` in the target's units) at local step 0, every step of a stream window,
  or frame ``t`` at step ``t`` (event frames);
* dense projection -> lava ``Dense`` (1-step delay). Fixed point: lava clips ``MIXED``
  weights to ``[-256, 255]`` and truncates 1 LSB, so we pass ``2*W_int`` with
  ``weight_exp - 1``: ``((2W)·s) >> 1 == W·s`` exactly, then ``<< weight_exp``.
  Float ``event_scale`` is folded into the columns: ``W·diag(e)``;
* conv projection -> lava ``Conv`` (1-step delay): lava convolves (flips the kernel) in
  ``(W, H, C)`` layout, so the kernel becomes ``w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)``
  with stride/padding as ``(x, y)``. Fixed point: lava's Conv ignores ``weight_exp``
  (we pass ``W_int << weight_exp``) and wraps its output to 24 bits, so a conv whose
  worst case (every input spiking) could pass ``2**23 - 1`` becomes a ``Dense`` with the
  unrolled int8 matrix instead, as does a float conv with ``event_scale``;
* synaptic delay ``d > 1`` -> :class:`SpikeDelay` of ``d - 1`` before the Dense/Conv.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.conv.models import PyConvModelFixed, PyConvModelFloat
from lava.proc.conv.process import Conv
from lava.proc.dense.models import PyDenseModelBitAcc, PyDenseModelFloat
from lava.proc.dense.process import Dense
from lava.utils.weightutils import SignMode
from pseudosnn.backends.lava import models
from pseudosnn.backends.lava.process import (
    CurrentSource,
    PseudoSNPopulation,
    ReadoutAccumulator,
    SpikeDelay,
    SpikePool,
    as_whc,
)
from pseudosnn.compiler.spiking.graph import GraphError, Projection, SpikingGraph
from pseudosnn.compiler.spiking.synapses import conv2d, encoder_currents, frame_targets

LAVA_CONV_OUTPUT_BITS = 24
"""lava ``PyConvModelFixed.clamp_precision``: ``signed_clamp(x, bits=24)`` (wraps)."""


@dataclass
class LavaNetwork:
    """The built processes of one graph for a batch of samples run back to back."""

    graph: SpikingGraph
    period: int
    n_samples: int
    record_dir: Path
    populations: dict[str, PseudoSNPopulation]
    readout: ReadoutAccumulator
    sources: list[CurrentSource]
    connections: list = field(default_factory=list)  # Dense / Conv / SpikeDelay
    pools: dict[str, SpikePool] = field(default_factory=dict)


@dataclass
class LavaRun:
    """What the processes recorded (graph layout, batch first) and how long it took."""

    counts: dict[str, np.ndarray]
    values: np.ndarray  # readout acc + b, (B, *readout.shape); integer units in fixed point
    spikes: dict[str, np.ndarray] | None
    steps: int
    seconds_compile: float  # lava compile + runtime start (process spawn)
    seconds_run: float  # stepping the network through every sample
    seconds_read: float  # stopping lava and loading the records


# --- arithmetic of the connection processes -------------------------------------------
def conv_as_dense(pr: Projection, source_shape: tuple[int, ...]) -> np.ndarray:
    """The conv as a (target size, source size) matrix: column ``j`` is the response to
    a unit event at source neuron ``j``."""
    n = int(np.prod(source_shape))
    basis = np.eye(n).reshape(n, *source_shape)
    return conv2d(basis, np.asarray(pr.weight, np.float64), pr.stride, pr.padding,
                  pr.groups).reshape(n, -1).T


def dense_arguments(pr: Projection, source_shape, fixed: bool) -> dict:
    """Keyword arguments of lava's ``Dense`` that make it compute ``project(pr, s)``."""
    w = conv_as_dense(pr, source_shape) if pr.kind == "conv" else np.asarray(pr.weight, float)
    if fixed:
        w = 2 * np.rint(w).astype(np.int64)  # MIXED: clip [-256, 255], drop 1 LSB
        return dict(weights=w.astype(np.int32), weight_exp=int(pr.weight_exp) - 1,
                    num_weight_bits=8, sign_mode=SignMode.MIXED)
    if pr.event_scale is not None:
        w = w * np.broadcast_to(pr.event_scale, source_shape).reshape(1, -1)
    return dict(weights=np.asarray(w, np.float64))


def conv_may_wrap(pr: Projection) -> bool:
    """Could lava's fixed-point Conv wrap (24-bit output) on this projection? Worst case:
    every input of the largest output row spikes with weights of one sign."""
    w = np.left_shift(np.abs(np.asarray(pr.weight, np.int64)), int(pr.weight_exp))
    return int(w.reshape(w.shape[0], -1).sum(axis=1).max()) > 2 ** (LAVA_CONV_OUTPUT_BITS - 1) - 1


def uses_dense(pr: Projection, fixed: bool) -> bool:
    """Whether a projection runs on lava's ``Dense`` (else ``Conv``)."""
    if pr.kind == "dense":
        return True
    return conv_may_wrap(pr) if fixed else pr.event_scale is not None


def conv_arguments(pr: Projection, source_shape, fixed: bool) -> dict:
    """Keyword arguments of lava's ``Conv`` that make it compute ``project(pr, s)``."""
    w = np.asarray(pr.weight)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    if fixed:
        if conv_may_wrap(pr):
            raise GraphError(f"conv projection {pr.name!r} could wrap lava Conv's "
                             f"{LAVA_CONV_OUTPUT_BITS}-bit output; run it as a Dense")
        w = np.left_shift(w.astype(np.int64), int(pr.weight_exp)).astype(np.int32)
    else:
        w = np.ascontiguousarray(w, dtype=np.float64)
    return dict(weight=np.ascontiguousarray(w), weight_exp=0, input_shape=as_whc(source_shape),
                padding=tuple(int(p) for p in pr.padding[::-1]),
                stride=tuple(int(s) for s in pr.stride[::-1]), groups=int(pr.groups))


def check_integer_units(graph: SpikingGraph) -> None:
    """Fixed point: thresholds, ``v0`` and biases must be integers (the contract)."""
    for p in graph.populations:
        for what, value in (("threshold", p.threshold), ("v0", p.v0), ("bias", p.bias)):
            if not np.all(np.asarray(value) == np.round(np.asarray(value, np.float64))):
                raise GraphError(f"fixed-point graph: {what} of population {p.name!r} is "
                                 "not an integer; recompile with quantisation")
    if not np.all(np.asarray(graph.readout.bias) == np.round(graph.readout.bias)):
        raise GraphError("fixed-point graph: the readout bias is not an integer")


# --- building -------------------------------------------------------------------------
def build_network(graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False,
                  fault: tuple[str, str, int] | None = None) -> LavaNetwork:
    """Create and connect the processes for samples ``x`` (B, *input shape).

    ``fault = (population, "raise" | "hang", global step)`` breaks one population on
    purpose (tests of the failure path)."""
    fixed = graph.fixed_point
    if fixed:
        check_integer_units(graph)
    names = [p.name for p in graph.populations]
    if fault and fault[0] not in names:
        raise GraphError(f"--inject-fault names {fault[0]!r}, which is not a population; "
                         f"choose one of {sorted(names)}")
    period = graph.latency_steps
    n_samples = int(x.shape[0])
    record_dir = Path(tempfile.mkdtemp(prefix="pseudosnn-lava-records-"))
    pops: dict[str, PseudoSNPopulation] = {}
    for i, p in enumerate(graph.populations):
        pfault = (fault[1], int(fault[2])) if fault and fault[0] == p.name else None
        pops[p.name] = PseudoSNPopulation(
            shape=p.shape, timesteps=p.timesteps_full(), bias=p.bias_full(),
            threshold=p.threshold, v0=p.v0, window_start=p.start, coupling=p.coupling,
            period=period, n_samples=n_samples, record_file=str(record_dir / f"pop{i}.npz"),
            record_spikes=record_spikes,
            fixed_point=fixed, fault=pfault, name=p.name)
    ro = graph.readout
    readout = ReadoutAccumulator(shape=ro.shape, bias=ro.bias, readout_step=graph.readout_step,
                                 period=period, n_samples=n_samples, fixed_point=fixed,
                                 record_file=str(record_dir / "readout.npz"),
                                 name=ro.name)
    targets = {**pops, ro.name: readout}
    net = LavaNetwork(graph, period, n_samples, record_dir, pops, readout,
                      _encoder_sources(graph, x, period, targets),
                      pools=_spike_pools(graph, pops, period, n_samples, record_dir,
                                         record_spikes))
    emitters = {**pops, **net.pools}
    for pr in graph.projections:
        if pr.is_encoder:
            continue
        src_shape = graph.shape_of(pr.source)
        src, tgt = emitters[pr.source], targets[pr.target]
        as_dense = uses_dense(pr, fixed)
        out_port = src.s_out if as_dense else src.s_out_whc
        if pr.delay > 1:
            line = SpikeDelay(shape=out_port.shape, delay=pr.delay - 1, period=period,
                              name=f"{pr.name}/delay")
            out_port.connect(line.s_in)
            out_port = line.s_out
            net.connections.append(line)
        if as_dense:
            conn = Dense(name=pr.name, **dense_arguments(pr, src_shape, fixed))
            out_port.connect(conn.s_in)
            conn.a_out.connect(tgt.a_in)
        else:
            conn = Conv(name=pr.name, **conv_arguments(pr, src_shape, fixed))
            out_port.connect(conn.s_in)
            conn.a_out.connect(tgt.a_in_whc)
        net.connections.append(conn)
    return net


def _encoder_sources(graph: SpikingGraph, x: np.ndarray, period: int,
                     targets: dict) -> list[CurrentSource]:
    """One :class:`CurrentSource` per encoder target, connected."""
    framed = frame_targets(graph)
    sources = []
    for name, current in encoder_currents(graph, x).items():
        frames = name in framed
        current = current.reshape(*current.shape[:2 if frames else 1], -1)
        stream = getattr(graph.node(name), "coupling", "rate") == "stream"
        src = CurrentSource(currents=current, period=period, every_step=stream,
                            frames=frames, name=f"encoder->{name}")
        src.a_out.connect(targets[name].a_in)
        sources.append(src)
    return sources


def _spike_pools(graph: SpikingGraph, pops: dict, period: int, n_samples: int,
                 record_dir: Path, record_spikes: bool) -> dict[str, SpikePool]:
    """One :class:`SpikePool` per pool, fed by its source population's spikes."""
    out = {}
    for i, p in enumerate(graph.pools):
        out[p.name] = SpikePool(
            source_shape=graph.shape_of(p.source), shape=p.shape, kernel=p.kernel,
            stride=p.stride, padding=p.padding, period=period, n_samples=n_samples,
            record_file=str(record_dir / f"pool{i}.npz"), record_spikes=record_spikes,
            name=p.name)
        pops[p.source].s_out.connect(out[p.name].s_in)
    return out


MODELS = {
    "floating_pt": {PseudoSNPopulation: models.PyPseudoSNModelFloat,
                    CurrentSource: models.PyCurrentSourceModelFloat,
                    ReadoutAccumulator: models.PyReadoutModelFloat,
                    SpikeDelay: models.PySpikeDelayModelFloat,
                    SpikePool: models.PySpikePoolModel,
                    Dense: PyDenseModelFloat, Conv: PyConvModelFloat},
    "fixed_pt": {PseudoSNPopulation: models.PyPseudoSNModelFixed,
                 CurrentSource: models.PyCurrentSourceModelFixed,
                 ReadoutAccumulator: models.PyReadoutModelFixed,
                 SpikeDelay: models.PySpikeDelayModelFixed,
                 SpikePool: models.PySpikePoolModel,
                 Dense: PyDenseModelBitAcc, Conv: PyConvModelFixed},
}
"""The ProcessModel of every Process, per mode. Lava's own search imports each file of a
Process's folder as a top-level module, which cannot work for a package with relative
imports, so every process instance is mapped explicitly (``exception_proc_model_map``)."""


CONV_MODELS = {
    "lava": {"floating_pt": PyConvModelFloat, "fixed_pt": PyConvModelFixed},
    "im2col": {"floating_pt": models.PyConvModelIm2colFloat,
               "fixed_pt": models.PyConvModelIm2colFixed},
}
"""ProcessModels for lava's ``Conv`` process: lava's own (``scipy`` per channel pair) or
the same arithmetic as one GEMM (``models.lava_conv_im2col``, several times faster)."""


def run_config(net: LavaNetwork, conv_model: str = "lava") -> Loihi2SimCfg:
    if conv_model not in CONV_MODELS:
        raise ValueError(f"unknown conv model {conv_model!r}; use one of {sorted(CONV_MODELS)}")
    tag = "fixed_pt" if net.graph.fixed_point else "floating_pt"
    chosen = {**MODELS[tag], Conv: CONV_MODELS[conv_model][tag]}
    procs = [*net.populations.values(), net.readout, *net.sources, *net.connections,
             *net.pools.values()]
    return Loihi2SimCfg(select_tag=tag,
                        exception_proc_model_map={p: chosen[type(p)] for p in procs})


def run_network(net: LavaNetwork, record_spikes: bool = False,
                conv_model: str = "lava") -> LavaRun:
    """Run all samples back to back (``period`` steps each), read the records, stop."""
    graph = net.graph
    steps = net.period * net.n_samples
    anchor = net.readout
    t0 = time.perf_counter()
    try:
        anchor.create_runtime(run_cfg=run_config(net, conv_model))
        t_compiled = time.perf_counter()
        anchor.run(condition=RunSteps(num_steps=steps))
        t1 = time.perf_counter()
    finally:
        anchor.stop()
    counts, spikes = {}, {} if record_spikes else None
    try:
        for p in (*graph.populations, *graph.pools):
            proc = net.populations.get(p.name) or net.pools[p.name]
            with np.load(proc.proc_params["record_file"]) as rec:
                counts[p.name] = rec["counts"].reshape(net.n_samples, *p.shape)
                if record_spikes:
                    spikes[p.name] = rec["spikes"].reshape(net.n_samples, net.period, *p.shape)
        with np.load(net.readout.proc_params["record_file"]) as rec:
            values = rec["values"].reshape(net.n_samples, *graph.readout.shape)
    finally:
        shutil.rmtree(net.record_dir, ignore_errors=True)
    t2 = time.perf_counter()
    return LavaRun(counts=counts, values=values, spikes=spikes, steps=net.period,
                   seconds_compile=t_compiled - t0, seconds_run=t1 - t_compiled,
                   seconds_read=t2 - t1)

