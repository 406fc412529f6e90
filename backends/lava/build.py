"""Spiking graph -> connected Lava processes, run, and read back (Lava venv only).

Mapping (compiler/graph.py semantics, 0-indexed clock = Lava ``time_step - 1``):

* population -> Lava's own ``LIFReset`` where it computes the population exactly
  (``lif_map.py``: hard reset to 0, ``v0 = 0``, ...), recorded by a :class:`SpikeRecorder`
  and fed its encoder current plus bias during its window by a :class:`CurrentSource`;
  every other population -> :class:`PseudoSNPopulation`; readout ->
  :class:`ReadoutAccumulator`; spike pool -> :class:`SpikePool` (receives its source's
  spikes, ours or Lava's LIF's, and sends the OR per window one step later:
  ``schedule.POOL_DELAY``);
* encoder projections (delay 0) -> one :class:`CurrentSource` per target, driving the
  precomputed current ``encoder_currents`` (the analog stem host side; fixed point:
  ``encode_fixed`` in the target's units) at local step 0 (rate), every step of the
  window (stream), or frame ``k`` at window step ``k`` (event frames);
* dense projection -> lava ``Dense`` (1-step delay). Fixed point: lava clips ``MIXED``
  weights to ``[-256, 255]`` and truncates 1 LSB, so we pass ``2*W_int`` with
  ``weight_exp - 1``: ``((2W)·s) >> 1 == W·s`` exactly, then ``<< weight_exp``.
  Float ``event_scale`` is folded into the columns: ``W·diag(e)``;
* conv projection -> lava ``Conv`` (1-step delay), reaching and leaving a Lava LIF (flat
  ports) through lava's virtual ``reshape``/``transpose`` ports: lava convolves (flips the
  kernel) in ``(W, H, C)`` layout, so the kernel becomes
  ``w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)``
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
from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat
from lava.proc.lif.process import LIFReset
from lava.utils.weightutils import SignMode
from pseudosnn.backends.lava import models
from pseudosnn.backends.lava.lif_map import lava_lif_parameters, lava_lif_refusal
from pseudosnn.backends.lava.process import (
    CurrentSource,
    PseudoSNPopulation,
    ReadoutAccumulator,
    SpikeDelay,
    SpikePool,
    SpikeRecorder,
    as_chw,
    as_whc,
)
from pseudosnn.compiler.spiking.graph import GraphError, Projection, SpikingGraph
from pseudosnn.compiler.spiking.graph import SpikePool as PoolNode
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
    populations: dict[str, PseudoSNPopulation | LIFReset]
    readout: ReadoutAccumulator
    sources: list[CurrentSource]
    connections: list = field(default_factory=list)  # Dense / Conv / SpikeDelay
    recorders: dict[str, SpikeRecorder] = field(default_factory=dict)  # of lava LIFs
    pools: dict[str, SpikePool] = field(default_factory=dict)

    def emitter(self, name: str) -> PseudoSNPopulation | LIFReset | SpikePool:
        """The process whose spikes a projection from population or pool ``name`` carries."""
        return self.pools[name] if name in self.pools else self.populations[name]

    def record_file(self, name: str) -> str:
        proc = self.recorders[name] if name in self.recorders else self.emitter(name)
        return proc.proc_params["record_file"]


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
    lava_lif: list[str] = field(default_factory=list)  # populations run on lava's own LIF


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
    """Fixed point: thresholds, ``v0``, ``v_reset`` and biases must be integers (the
    contract)."""
    for p in graph.populations:
        for what, value in (("threshold", p.threshold), ("v0", p.v0), ("v_reset", p.v_reset),
                            ("bias", p.bias)):
            if not np.all(np.asarray(value) == np.round(np.asarray(value, np.float64))):
                raise GraphError(f"fixed-point graph: {what} of population {p.name!r} is "
                                 "not an integer; recompile with quantisation")
    if not np.all(np.asarray(graph.readout.bias) == np.round(graph.readout.bias)):
        raise GraphError("fixed-point graph: the readout bias is not an integer")


# --- building -------------------------------------------------------------------------
def _population(graph: SpikingGraph, i: int, period: int, n_samples: int, record_dir: Path,
                record_spikes: bool, fault) -> tuple[PseudoSNPopulation | LIFReset,
                                                      SpikeRecorder | None]:
    """The process of population ``i`` (Lava's LIF and its recorder, or ours)."""
    p = graph.populations[i]
    record_file = str(record_dir / f"pop{i}.npz")
    if lava_lif_refusal(graph, p) is None and fault is None:
        n = p.size
        lif = LIFReset(shape=(n,), u=0, v=0, bias_mant=0, bias_exp=0, reset_interval=period,
                       reset_offset=1, name=p.name, **lava_lif_parameters(p, graph.fixed_point))
        rec = SpikeRecorder(shape=(n,), period=period, n_samples=n_samples,
                            record_file=record_file, record_spikes=record_spikes,
                            name=f"{p.name}/record")
        lif.s_out.connect(rec.s_in)
        return lif, rec
    dynamics = {"du": p.du, "dv": p.dv, "reset": p.reset, "v_reset": p.v_reset, "fire": p.fire}
    return PseudoSNPopulation(
        shape=p.shape, timesteps=p.timesteps_full(), bias=p.bias_full(), threshold=p.threshold,
        v0=p.v0, window_start=p.start, coupling=p.coupling, period=period,
        n_samples=n_samples, record_file=record_file, record_spikes=record_spikes,
        fixed_point=graph.fixed_point, fault=fault, dynamics=dynamics, name=p.name), None


def _spike_port(proc, shape: tuple[int, ...], whc: bool):
    """The spike output of a population or pool process, flat or in lava's ``(W, H, C)``
    layout."""
    if isinstance(proc, LIFReset):
        return proc.s_out.reshape(as_chw(shape)).transpose([2, 1, 0]) if whc else proc.s_out
    return proc.s_out_whc if whc else proc.s_out


def _connect_current(out_port, proc, shape: tuple[int, ...], whc: bool) -> None:
    """Connect a current (flat or ``(W, H, C)``) to a target process's input."""
    if whc and isinstance(proc, LIFReset):  # (W, H, C) -> (C, H, W) -> flat
        out_port.transpose([2, 1, 0]).reshape((int(np.prod(shape)),)).connect(proc.a_in)
    elif whc:
        out_port.connect(proc.a_in_whc)
    else:
        out_port.connect(proc.a_in)


def build_network(graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False,
                  fault: tuple[str, str, int] | None = None) -> LavaNetwork:
    """Create and connect the processes for samples ``x`` (B, *input shape).

    ``fault = (population, "raise" | "hang", global step)`` breaks one population on
    purpose (tests of the failure path); that population runs on our own process."""
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
    pops, recorders = {}, {}
    for i, p in enumerate(graph.populations):
        pfault = (fault[1], int(fault[2])) if fault and fault[0] == p.name else None
        pops[p.name], rec = _population(graph, i, period, n_samples, record_dir,
                                        record_spikes, pfault)
        if rec is not None:
            recorders[p.name] = rec
    ro = graph.readout
    readout = ReadoutAccumulator(shape=ro.shape, bias=ro.bias, readout_step=graph.readout_step,
                                 period=period, n_samples=n_samples, fixed_point=fixed,
                                 record_file=str(record_dir / "readout.npz"),
                                 name=ro.name)
    targets = {**pops, ro.name: readout}
    net = LavaNetwork(graph, period, n_samples, record_dir, pops, readout, [],
                      recorders=recorders)
    for i, pool in enumerate(graph.pools):
        _add_pool(net, pool, str(record_dir / f"pool{i}.npz"), record_spikes)
    encoder = encoder_currents(graph, x)
    framed = frame_targets(graph)
    for name, current in encoder.items():
        if name not in recorders:
            _add_source(net, name, _flat(current, name in framed), name in framed)
    for pr in graph.projections:
        if not pr.is_encoder:
            _connect_projection(net, pr, targets)
    for name in recorders:  # lava LIF: encoder current (or frames) + bias, in the window
        frames, bias = name in framed, graph.population(name).bias_full().reshape(1, -1)
        drive = (_flat(encoder[name], frames) + (bias[:, None] if frames else bias)
                 if name in encoder else np.broadcast_to(bias, (n_samples, bias.size)))
        _add_source(net, name, drive.astype(np.int64 if fixed else np.float64), frames)
    return net


def _flat(current: np.ndarray, frames: bool) -> np.ndarray:
    """An encoder current flat per sample ``(B, N)``, or per frame ``(B, F, N)``."""
    return current.reshape(*current.shape[:2 if frames else 1], -1)


def _add_source(net: LavaNetwork, name: str, currents: np.ndarray, frames: bool) -> None:
    """A :class:`CurrentSource` into ``name``: at local step 0 into a rate population of
    ours (it accumulates), in the window into a stream population or a Lava LIF (one
    frame per step with ``frames``)."""
    graph = net.graph
    target = net.populations.get(name, net.readout)
    if name in net.populations and (graph.population(name).coupling == "stream"
                                    or name in net.recorders):
        first, stop = graph.population(name).start, graph.population(name).end
    else:
        first, stop = 0, 1
    src = CurrentSource(currents=currents, period=net.period, first=first, stop=stop,
                        frames=frames, name=f"current->{name}")
    src.a_out.connect(target.a_in)
    net.sources.append(src)


def _add_pool(net: LavaNetwork, pool: PoolNode, record_file: str, record_spikes: bool) -> None:
    """A :class:`SpikePool` fed by its source population's flat spikes."""
    proc = SpikePool(
        source_shape=net.graph.shape_of(pool.source), shape=pool.shape, kernel=pool.kernel,
        stride=pool.stride, padding=pool.padding, period=net.period,
        n_samples=net.n_samples, record_file=record_file, record_spikes=record_spikes,
        name=pool.name)
    net.populations[pool.source].s_out.connect(proc.s_in)
    net.pools[pool.name] = proc


def _connect_projection(net: LavaNetwork, pr: Projection, targets: dict) -> None:
    """Lava's ``Dense`` or ``Conv`` (after a delay line for ``delay > 1``) from the source
    population's (or pool's) spikes to the target's input."""
    graph, fixed = net.graph, net.graph.fixed_point
    src_shape = graph.shape_of(pr.source)
    as_dense = uses_dense(pr, fixed)
    out_port = _spike_port(net.emitter(pr.source), src_shape, whc=not as_dense)
    if pr.delay > 1:
        line = SpikeDelay(shape=out_port.shape, delay=pr.delay - 1, period=net.period,
                          name=f"{pr.name}/delay")
        out_port.connect(line.s_in)
        out_port = line.s_out
        net.connections.append(line)
    if as_dense:
        conn = Dense(name=pr.name, **dense_arguments(pr, src_shape, fixed))
    else:
        conn = Conv(name=pr.name, **conv_arguments(pr, src_shape, fixed))
    out_port.connect(conn.s_in)
    _connect_current(conn.a_out, targets[pr.target], graph.shape_of(pr.target),
                     whc=not as_dense)
    net.connections.append(conn)


MODELS = {
    "floating_pt": {PseudoSNPopulation: models.PyPseudoSNModelFloat,
                    LIFReset: PyLifResetModelFloat,
                    SpikeRecorder: models.PySpikeRecorderModelFloat,
                    CurrentSource: models.PyCurrentSourceModelFloat,
                    ReadoutAccumulator: models.PyReadoutModelFloat,
                    SpikeDelay: models.PySpikeDelayModelFloat,
                    SpikePool: models.PySpikePoolModel,
                    Dense: PyDenseModelFloat, Conv: PyConvModelFloat},
    "fixed_pt": {PseudoSNPopulation: models.PyPseudoSNModelFixed,
                 LIFReset: PyLifResetModelBitAcc,
                 SpikeRecorder: models.PySpikeRecorderModelFixed,
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
             *net.recorders.values(), *net.pools.values()]
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
            with np.load(net.record_file(p.name)) as rec:
                counts[p.name] = rec["counts"].reshape(net.n_samples, *p.shape)
                if record_spikes:
                    spikes[p.name] = rec["spikes"].reshape(net.n_samples, net.period, *p.shape)
        with np.load(net.readout.proc_params["record_file"]) as rec:
            values = rec["values"].reshape(net.n_samples, *graph.readout.shape)
    finally:
        shutil.rmtree(net.record_dir, ignore_errors=True)
    t2 = time.perf_counter()
    return LavaRun(counts=counts, values=values, spikes=spikes, steps=net.period,
                   lava_lif=list(net.recorders),
                   seconds_compile=t_compiled - t0, seconds_run=t1 - t_compiled,
                   seconds_read=t2 - t1)

