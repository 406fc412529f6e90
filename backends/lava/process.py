"""Our Lava Processes: the PseudoSN population, the encoder current source, the readout,
a spike delay line, a spike max pool and a spike recorder. Projections use lava's own
``Dense`` and ``Conv``; populations whose dynamics Lava's own ``LIF`` computes exactly run
on it (``lava.proc.lif.process.LIFReset``, see ``lif_map.py``), recorded by a
:class:`SpikeRecorder`.

Layout: every Process keeps its neurons flat in the graph's C order (``(C, H, W)``
flattened). Each has a flat port pair (``a_in``/``s_out``, for lava's ``Dense`` and for
our processes) and a lava-layout port pair (``a_in_whc``/``s_out_whc``, shape
``(W, H, C)``, for lava's ``Conv``). A 1-D shape ``(N,)`` counts as ``(N, 1, 1)``.
Unconnected ports cost nothing: sends go nowhere, receives return zeros.

Samples run back to back in one Lava run, each ``period`` steps long (the graph's latency):
global step ``g = k*period + t`` is local step ``t`` of sample ``k``; every process resets
its state at ``t = 0``.

Records (spike counts, spike trains, readout values) are kept inside the processes and
written by each process to its ``record_file`` (``.npz``, atomically) at the last step:
lava's ``Var.get()`` ships an array element by element (measured here: 77 s to read the
spike trains of 30 digits through a residual CNN, against milliseconds from a file).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


def as_chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The graph shape as ``(C, H, W)`` (a flat ``(N,)`` is ``(N, 1, 1)``)."""
    if len(shape) == 3:
        return tuple(int(s) for s in shape)  # type: ignore[return-value]
    return (int(np.prod(shape)), 1, 1)


def as_whc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Lava's conv layout ``(W, H, C)`` of a graph shape."""
    return as_chw(shape)[::-1]


class _FlatAndWhcPorts(AbstractProcess):
    """Common base: the two input ports (flat and WHC) of a node with ``shape``."""

    def _add_inputs(self, shape: tuple[int, ...]) -> None:
        self.a_in = InPort(shape=(int(np.prod(shape)),))
        self.a_in_whc = InPort(shape=as_whc(shape))


class PseudoSNPopulation(_FlatAndWhcPorts):
    """Spiking neurons with the contract's dynamics (integrate-and-fire, or leak, hard
    reset and comparison: ``dynamics``, a dict of :class:`~pseudosnn.compiler.spiking.
    semantics.Dynamics` fields), ``v0``, rate or stream coupling and per-neuron windows
    ``start <= t < start + T_i`` (compiler/graph.py).

    rate:   ``acc += a_in`` every step; inside the window integrate ``c = acc + b``;
    stream: inside the window integrate ``c = a_in + b``.
    One step is :func:`pseudosnn.compiler.spiking.semantics.neuron_step` (24-bit
    saturation or Loihi's LIF arithmetic in fixed point). Records per-sample spike counts
    and, if asked, every spike. ``fault`` (``("raise" | "hang", global step)``) breaks the
    process on purpose, to test the failure path (``entry --inject-fault``).
    """

    def __init__(self, *, shape: tuple[int, ...], timesteps: np.ndarray, bias: np.ndarray,
                 threshold: float, v0: float, window_start: int, coupling: str,
                 period: int, n_samples: int, record_file: str, record_spikes: bool = False,
                 fixed_point: bool = False, fault: tuple[str, int] | None = None,
                 dynamics: dict | None = None, name: str | None = None):
        n = int(np.prod(shape))
        dtype = np.int64 if fixed_point else np.float64
        super().__init__(
            shape=tuple(shape), timesteps=np.broadcast_to(timesteps, shape).reshape(n).copy(),
            bias=np.broadcast_to(bias, shape).reshape(n).astype(dtype),
            threshold=dtype(threshold), v0=dtype(v0), window_start=int(window_start),
            coupling=coupling, period=int(period), n_samples=int(n_samples),
            record_file=str(record_file), record_spikes=bool(record_spikes),
            fault_kind=fault[0] if fault else "", fault_step=int(fault[1]) if fault else -1,
            dynamics=dict(dynamics or {}), name=name)
        self._add_inputs(shape)
        self.s_out = OutPort(shape=(n,))
        self.s_out_whc = OutPort(shape=as_whc(shape))
        self.v = Var(shape=(n,), init=0)
        self.u = Var(shape=(n,), init=0)
        self.acc = Var(shape=(n,), init=0)


class CurrentSource(AbstractProcess):
    """Drives the precomputed current of sample ``k`` (flat, graph order) at the local steps
    ``first <= t < stop``, zeros elsewhere. The encoder into one of our populations: a
    rate target accumulates it, so it is sent once, at local step 0 (the encoder
    projection has delay 0); a stream target gets it every step of its window (direct
    encoding holds the current constant). Into Lava's own LIF it carries the encoder
    current plus the bias during the window (the contract's bias is a current).
    ``frames``: ``currents`` is ``(B, F, N)`` and frame ``t - first`` is sent at local
    step ``t`` (event frames, one per step of the window)."""

    def __init__(self, *, currents: np.ndarray, period: int, first: int, stop: int,
                 frames: bool = False, name: str | None = None):
        currents = np.asarray(currents)
        super().__init__(currents=currents, period=int(period), first=int(first),
                         stop=int(stop), frames=bool(frames), name=name)
        self.a_out = OutPort(shape=(currents.shape[-1],))


class ReadoutAccumulator(_FlatAndWhcPorts):
    """Non-spiking readout: ``acc += a_in`` every step; at ``readout_step`` records
    ``acc + b`` for the sample (integer units in fixed point)."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray, readout_step: int,
                 period: int, n_samples: int, record_file: str, fixed_point: bool = False,
                 name: str | None = None):
        n = int(np.prod(shape))
        dtype = np.int64 if fixed_point else np.float64
        super().__init__(shape=tuple(shape),
                         bias=np.broadcast_to(bias, shape).reshape(n).astype(dtype),
                         readout_step=int(readout_step), period=int(period),
                         n_samples=int(n_samples), record_file=str(record_file), name=name)
        self._add_inputs(shape)
        self.acc = Var(shape=(n,), init=0)


class SpikePool(AbstractProcess):
    """Max pooling of spikes (compiler/spiking/graph.py ``SpikePool``): receives the source
    population's spikes (flat) at step ``t`` and sends, at ``t + 1``, the OR over each
    window (``kernel``, ``stride``, zero ``padding``), flat and in lava's conv layout.
    Records per-sample counts of what it sent (and, if asked, every event)."""

    def __init__(self, *, source_shape: tuple[int, ...], shape: tuple[int, ...],
                 kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                 period: int, n_samples: int, record_file: str, record_spikes: bool = False,
                 name: str | None = None):
        super().__init__(source_shape=tuple(source_shape), shape=tuple(shape),
                         kernel=tuple(kernel), stride=tuple(stride), padding=tuple(padding),
                         period=int(period), n_samples=int(n_samples),
                         record_file=str(record_file), record_spikes=bool(record_spikes),
                         name=name)
        self.s_in = InPort(shape=(int(np.prod(source_shape)),))
        self.s_out = OutPort(shape=(int(np.prod(shape)),))
        self.s_out_whc = OutPort(shape=as_whc(shape))


class SpikeDelay(AbstractProcess):
    """Delays binary events by ``delay`` steps (a projection with synaptic delay ``d``
    is this line with ``d - 1`` followed by lava's 1-step ``Dense``/``Conv``)."""

    def __init__(self, *, shape: tuple[int, ...], delay: int, period: int,
                 name: str | None = None):
        if delay < 1:
            raise ValueError(f"SpikeDelay needs delay >= 1, got {delay}")
        super().__init__(shape=tuple(shape), delay=int(delay), period=int(period), name=name)
        self.s_in = InPort(shape=tuple(shape))
        self.s_out = OutPort(shape=tuple(shape))


class SpikeRecorder(AbstractProcess):
    """Records the spikes of a process that keeps no records itself (Lava's ``LIF``): per
    sample spike counts and, if asked, every spike, written to ``record_file`` at the
    last step like :class:`PseudoSNPopulation`'s records."""

    def __init__(self, *, shape: tuple[int, ...], period: int, n_samples: int,
                 record_file: str, record_spikes: bool = False, name: str | None = None):
        n = int(np.prod(shape))
        super().__init__(shape=tuple(shape), period=int(period), n_samples=int(n_samples),
                         record_file=str(record_file), record_spikes=bool(record_spikes),
                         name=name)
        self.s_in = InPort(shape=(n,))
