"""Float and bit-accurate fixed-point ProcessModels of our Processes (``process.py``).

The neuron step is :func:`pseudosnn.compiler.spiking.semantics.neuron_step` itself, so the
Lava neuron cannot drift from the contract; the fixed-point models keep every state in
exact int64 arithmetic with the contract's 24-bit membrane (saturating, or Loihi's LIF
arithmetic). Models are tagged ``floating_pt`` / ``fixed_pt`` like lava's own
(``Loihi2SimCfg(select_tag=...)``).

Lava may hang instead of raising when a process fails, so every ``run_spk`` prints its
traceback to stderr (flushed) before re-raising: the caller's timeout then shows it.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv.models import PyConvModelFixed, PyConvModelFloat
from lava.proc.conv.process import Conv
from pseudosnn.backends.lava.process import (
    CurrentSource,
    PseudoSNPopulation,
    ReadoutAccumulator,
    SpikeDelay,
    SpikePool,
    SpikeRecorder,
    as_chw,
)
from pseudosnn.compiler.spiking.semantics import Dynamics, initial_state, neuron_step
from pseudosnn.compiler.spiking.synapses import conv2d, max_pool

FAILURE_FILE_ENV = "PSEUDOSNN_LAVA_FAILURE_FILE"
"""If set, a failing process also appends its traceback to this file: the entry point's
watchdog polls it and ends the run at once instead of waiting for its timeout."""
FAULT_MESSAGE = "injected fault (--inject-fault) in Lava process"


class InjectedFault(RuntimeError):
    """Raised on purpose by ``--inject-fault`` to test the failure path."""


def _report_errors(step):
    """Wrap ``run_spk``: print the traceback (and the process name) before re-raising."""

    def run_spk(self):
        try:
            step(self)
        except BaseException:
            name = self.proc_params.get("name", type(self).__name__)
            message = (f"\n[pseudosnn lava] process {name!r} failed at time step "
                       f"{self.time_step}:\n{traceback.format_exc()}")
            sys.stderr.write(message)
            sys.stderr.flush()
            if os.environ.get(FAILURE_FILE_ENV):
                with open(os.environ[FAILURE_FILE_ENV], "a") as f:
                    f.write(message)
            raise

    return run_spk


def _inject(kind: str, name: str) -> None:
    if kind == "hang":
        time.sleep(1e6)
    raise InjectedFault(f"{FAULT_MESSAGE} {name!r}")


def _save_records(model, **arrays) -> None:
    """Write this process's records to its ``record_file`` (atomically) after the last
    step of the last sample."""
    p = model.proc_params
    if int(model.time_step) != int(p["n_samples"]) * int(p["period"]):
        return
    path = p["record_file"]
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


class _SpikeRecords:
    """Per-sample spike counts of ``n`` neurons (and, with ``record_spikes``, every spike),
    written by :func:`_save_records` after the last step."""

    def __init__(self, p: dict, n: int):
        self.counts = np.zeros((int(p["n_samples"]), n), np.int64)
        self.spikes = (np.zeros((int(p["n_samples"]), int(p["period"]), n), bool)
                       if p["record_spikes"] else None)

    def add(self, model, k: int, t: int, spikes: np.ndarray) -> None:
        """Spikes of local step ``t`` of sample ``k``."""
        self.counts[k] += spikes
        if self.spikes is None:
            _save_records(model, counts=self.counts)
        else:
            self.spikes[k, t] = spikes
            _save_records(model, counts=self.counts, spikes=self.spikes)


def _local_step(model) -> tuple[int, int]:
    """(sample index, local step) of the current Lava time step (which starts at 1)."""
    return divmod(int(model.time_step) - 1, int(model.proc_params["period"]))


# --- population -----------------------------------------------------------------------
class _PopulationModel(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = proc_params
        self._ps_T = np.asarray(p["timesteps"], dtype=np.int64)
        self._ps_first = int(p["window_start"])
        self._ps_rate = p["coupling"] == "rate"
        self._ps_theta = p["threshold"]
        self._ps_v0 = p["v0"]
        self._ps_bias = p["bias"]
        self._ps_chw = as_chw(p["shape"])
        self._ps_fault = (p["fault_kind"], int(p["fault_step"]))
        dyn = Dynamics(**p["dynamics"])
        if self._ps_fixed:
            dyn = Dynamics(**{**p["dynamics"], "v_reset": int(dyn.v_reset)})
        self._ps_dyn = dyn
        self._ps_records = _SpikeRecords(p, self._ps_T.size)

    def _step(self):
        k, t = _local_step(self)
        dyn = self._ps_dyn
        if t == 0:
            v, _ = initial_state(self.v.shape, self._ps_v0, dyn, self._ps_fixed, self.v.dtype)
            self.v[:] = v
            self.u[:] = 0
            self.acc[:] = 0
        a = self.a_in.recv() + self.a_in_whc.recv().transpose(2, 1, 0).reshape(-1)
        if self._ps_fault[1] == int(self.time_step) - 1:
            _inject(self._ps_fault[0], self.proc_params["name"])
        if self._ps_rate:
            self.acc[:] = self.acc + a
            current = self.acc + self._ps_bias
        else:
            current = a + self._ps_bias
        active = (t >= self._ps_first) & (t < self._ps_first + self._ps_T)
        v, u, spikes = neuron_step(self.v, None if dyn.du == 1 else self.u, current,
                                   self._ps_theta, dyn, active, fixed=self._ps_fixed)
        self.v[:] = v
        if u is not None:
            self.u[:] = u
        self.s_out.send(spikes)
        self.s_out_whc.send(spikes.reshape(self._ps_chw).transpose(2, 1, 0))
        self._ps_records.add(self, k, t, spikes)

    run_spk = _report_errors(_step)


@implements(proc=PseudoSNPopulation, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPseudoSNModelFloat(_PopulationModel):
    """Float64 membrane and currents."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_in_whc: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    s_out_whc: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    acc: np.ndarray = LavaPyType(np.ndarray, float)
    _ps_fixed = False


@implements(proc=PseudoSNPopulation, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyPseudoSNModelFixed(_PopulationModel):
    """Exact integers: int64 accumulator, 24-bit membrane (saturated after every
    integration, or Loihi's LIF arithmetic: ``neuron_step(..., fixed=True)``)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=64)
    a_in_whc: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    s_out_whc: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    _ps_fixed = True


# --- encoder current ------------------------------------------------------------------
class _CurrentSourceModel(PyLoihiProcessModel):
    def _step(self):
        k, t = _local_step(self)
        p = self.proc_params
        currents = p["currents"]
        if p["first"] <= t < p["stop"]:
            self.a_out.send(np.asarray(currents[k, t - p["first"]] if p["frames"]
                                       else currents[k]))
        else:
            self.a_out.send(np.zeros(currents.shape[-1], dtype=currents.dtype))

    run_spk = _report_errors(_step)


@implements(proc=CurrentSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyCurrentSourceModelFloat(_CurrentSourceModel):
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=CurrentSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyCurrentSourceModelFixed(_CurrentSourceModel):
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=64)


# --- readout --------------------------------------------------------------------------
class _ReadoutModel(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        bias = proc_params["bias"]
        self._ps_values = np.zeros((int(proc_params["n_samples"]), bias.size), bias.dtype)

    def _step(self):
        k, t = _local_step(self)
        if t == 0:
            self.acc[:] = 0
        a = self.a_in.recv() + self.a_in_whc.recv().transpose(2, 1, 0).reshape(-1)
        self.acc[:] = self.acc + a
        if t == int(self.proc_params["readout_step"]):
            self._ps_values[k] = self.acc + self.proc_params["bias"]
        _save_records(self, values=self._ps_values)

    run_spk = _report_errors(_step)


@implements(proc=ReadoutAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutModelFloat(_ReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_in_whc: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    acc: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=ReadoutAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyReadoutModelFixed(_ReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=64)
    a_in_whc: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=64)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)


# --- spike recorder (for lava's own LIF) ------------------------------------------------
class _SpikeRecorderModel(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._ps_records = _SpikeRecords(proc_params, int(np.prod(proc_params["shape"])))

    def _step(self):
        k, t = _local_step(self)
        self._ps_records.add(self, k, t, self.s_in.recv().astype(bool))

    run_spk = _report_errors(_step)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeRecorderModelFloat(_SpikeRecorderModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySpikeRecorderModelFixed(_SpikeRecorderModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)


# --- spike max pool -------------------------------------------------------------------
class _SpikePoolModel(PyLoihiProcessModel):
    """One-step buffer like lava's ``Dense``: send what was pooled last step, then pool
    what arrives (``synapses.max_pool`` with padding ``False``: an OR per window). The
    source is one of our populations (bool spikes) or Lava's LIF (0/1 in its own type)."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        n = int(np.prod(proc_params["shape"]))
        self._ps_buf = np.zeros(n, bool)
        self._ps_records = _SpikeRecords(proc_params, n)

    def _step(self):
        k, t = _local_step(self)
        p = self.proc_params
        if t == 0:
            self._ps_buf[:] = False
        out = self._ps_buf.copy()
        self.s_out.send(out)
        self.s_out_whc.send(out.reshape(as_chw(p["shape"])).transpose(2, 1, 0))
        s = self.s_in.recv().astype(bool).reshape(1, *p["source_shape"])
        self._ps_buf[:] = max_pool(s, p["kernel"], p["stride"], p["padding"],
                                   pad_value=False).reshape(-1)
        self._ps_records.add(self, k, t, out)

    run_spk = _report_errors(_step)


@implements(proc=SpikePool, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt", "fixed_pt", "bit_accurate_loihi")
class PySpikePoolModel(_SpikePoolModel):
    """Binary events in and out: the same OR in float and fixed point."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    s_out_whc: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)


# --- delay line -----------------------------------------------------------------------
class _SpikeDelayModel(PyLoihiProcessModel):
    """Ring buffer of ``delay`` steps: sends what arrived ``delay`` steps ago."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._ps_ring = np.zeros((int(proc_params["delay"]), *proc_params["shape"]), bool)

    def _step(self):
        _, t = _local_step(self)
        if t == 0:
            self._ps_ring[:] = False
        slot = t % self._ps_ring.shape[0]
        self.s_out.send(self._ps_ring[slot].copy())
        self._ps_ring[slot] = self.s_in.recv().astype(bool)

    run_spk = _report_errors(_step)


@implements(proc=SpikeDelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeDelayModelFloat(_SpikeDelayModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)


@implements(proc=SpikeDelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySpikeDelayModelFixed(_SpikeDelayModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)


# --- a vectorised model for lava's own Conv process -------------------------------------
def lava_conv_im2col(s_in: np.ndarray, weight: np.ndarray, stride, padding, groups: int):
    """Exactly lava's ``utils.conv`` (a true convolution in ``(X, Y, C)`` layout with
    kernel ``(K, kx, ky, C/groups)``, dilation 1) as one im2col GEMM per group:
    ``out[x, y, k] = sum_{u,v,c} in_pad[x*s0 + u, y*s1 + v, c] * w[k, kx-1-u, ky-1-v, c]``.
    Integer inputs stay exact (int64)."""
    x = np.asarray(s_in)[None].transpose(0, 3, 1, 2)  # (1, C, X, Y)
    w = np.asarray(weight)[:, ::-1, ::-1, :].transpose(0, 3, 1, 2)  # cross-correlation
    if np.issubdtype(w.dtype, np.integer):
        x, w = x.astype(np.int64), w.astype(np.int64)
    else:
        x = x.astype(w.dtype)
    out = conv2d(x, w, tuple(int(s) for s in stride), tuple(int(p) for p in padding),
                 int(groups))
    return out[0].transpose(1, 2, 0)


class _Im2colConv:
    """``run_spk`` of lava's ``AbstractPyConvModel`` with the convolution done by
    :func:`lava_conv_im2col` instead of per-channel ``scipy.signal.convolve2d`` calls
    (lava's own models, ~5-10x slower here). Same 1-step buffer, same 24-bit clamp."""

    def run_spk(self) -> None:
        if self.a_buf is None:
            self.a_buf = np.zeros_like(self.a_out.shape)
        self.a_out.send(self.a_buf)
        if self.num_message_bits.item() > 0:
            s_in = self.s_in.recv()
        else:
            s_in = self.s_in.recv().astype(bool)
        if np.any(self.dilation != 1):
            raise NotImplementedError("the im2col Conv model supports dilation 1 only")
        a_out = lava_conv_im2col(s_in, self.weight, self.stride, self.padding,
                                 int(self.groups[0]))
        self.a_buf = self.clamp_precision(a_out.astype(self.weight.dtype))


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt", "im2col")
class PyConvModelIm2colFloat(_Im2colConv, PyConvModelFloat):
    """lava's float Conv arithmetic, vectorised."""


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "im2col")
class PyConvModelIm2colFixed(_Im2colConv, PyConvModelFixed):
    """lava's fixed-point Conv arithmetic (int32 weights, 24-bit wrap), vectorised."""

