"""Float and bit-accurate fixed-point ProcessModels of our Processes (``process.py``).

The neuron step is :func:`pseudosnn.compiler.semantics.if_step` itself, so the Lava
neuron cannot drift from the contract; the fixed-point models keep every state in exact
int64 arithmetic with the 24-bit membrane saturation of the contract. Models are tagged
``floating_pt`` / ``fixed_pt`` like lava's own (``Loihi2SimCfg(select_tag=...)``).

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

from ...compiler.semantics import if_step
from .process import CurrentSource, PseudoSNPopulation, ReadoutAccumulator, SpikeDelay, as_chw

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
        self._ps_record = bool(p["record_spikes"])
        self._ps_fault = (p["fault_kind"], int(p["fault_step"]))

    def _step(self):
        k, t = _local_step(self)
        if t == 0:
            self.v[:] = self._ps_v0
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
        v, spikes = if_step(self.v, current, self._ps_theta, active,
                            saturate=self._ps_fixed)
        self.v[:] = v
        self.counts[k] += spikes
        if self._ps_record:
            self.spike_record[k, t] = spikes
        self.s_out.send(spikes)
        self.s_out_whc.send(spikes.reshape(self._ps_chw).transpose(2, 1, 0))

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
    acc: np.ndarray = LavaPyType(np.ndarray, float)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spike_record: np.ndarray = LavaPyType(np.ndarray, bool)
    _ps_fixed = False


@implements(proc=PseudoSNPopulation, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyPseudoSNModelFixed(_PopulationModel):
    """Exact integers: int64 accumulator, membrane saturated to 24 bits after every
    integration (``if_step(..., saturate=True)``)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=64)
    a_in_whc: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    s_out_whc: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spike_record: np.ndarray = LavaPyType(np.ndarray, bool)
    _ps_fixed = True


# --- encoder current ------------------------------------------------------------------
class _CurrentSourceModel(PyLoihiProcessModel):
    def _step(self):
        k, t = _local_step(self)
        currents = self.proc_params["currents"]
        if t == 0 or self.proc_params["every_step"]:
            self.a_out.send(np.asarray(currents[k]))
        else:
            self.a_out.send(np.zeros(currents.shape[1], dtype=currents.dtype))

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
    def _step(self):
        k, t = _local_step(self)
        if t == 0:
            self.acc[:] = 0
        a = self.a_in.recv() + self.a_in_whc.recv().transpose(2, 1, 0).reshape(-1)
        self.acc[:] = self.acc + a
        if t == int(self.proc_params["readout_step"]):
            self.values[k] = self.acc + self.proc_params["bias"]

    run_spk = _report_errors(_step)


@implements(proc=ReadoutAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutModelFloat(_ReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_in_whc: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    acc: np.ndarray = LavaPyType(np.ndarray, float)
    values: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=ReadoutAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyReadoutModelFixed(_ReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=64)
    a_in_whc: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=64)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    values: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)


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
