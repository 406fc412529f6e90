"""How each library discretises a NIR graph (torch-free): the *dialect* of ``--from``.

NIR (nir 1.0.x) stores continuous-time neurons and no step length, and a file does not say
which library wrote it. Written with the library's exporter, the same ``LIF`` node means
different time loops in different libraries, so the importer needs the library (the
dialect) and, where the library does not fix it, the step ``dt`` (``--dt``, in the time
unit of the file's ``tau``). NIR's neurons, with input ``x`` (the sum of the node's
incoming edges) and the ODEs of the NIR spec::

    LIF      tau·dv/dt = (v_leak − v) + r·x                 spike v > v_threshold, v -> v_reset
    CubaLIF  tau_syn·dI/dt = −I + w_in·x;  tau_mem·dv/dt = (v_leak − v) + r·I
    IF       dv/dt = r·x;   LI / I: the non-spiking LIF / IF (readouts only here)

Each dialect below is what the library's exporter writes and its own time loop computes
(read from snntorch 1.0.0, norse 1.1.0, spikingjelly 2.0.0 and sinabs 3.1.3; the tests run
every one against the library). All of them update a neuron in the step its input arrives
and compute its spike from the new membrane; with Euler step ``a = dt/tau``:

=============  ==========================================================================
``nir``        the spec, forward Euler with ``--dt``: ``v += a·(v_leak − v + r·x)``,
               ``I += (dt/tau_syn)·(−I + w_in·x)`` before ``v`` reads it, ``IF: v += dt·r·x``;
               fires on ``v > θ``, resets to ``v_reset``, starts at rest (``v_leak``, 0 for IF).
``snntorch``   ``dt = 1e-4``, hard-coded in ``export_nir``/``import_nir``: ``Leaky(β)`` is
               ``LIF(tau = dt/(1−β), r = tau/dt)``, so the Euler step is ``v = β·v + x``;
               ``Synaptic(α, β)`` is ``CubaLIF(w_in = tau_syn/dt, r = tau_mem/dt)``:
               ``I = α·I + x``, ``v = β·v + I``. Fires on ``v > θ``; starts at 0. The file
               always says ``v_reset = 0``: snnTorch's exporter drops ``reset_mechanism``,
               so this is snnTorch's ``reset_mechanism="zero"`` (what ``import_from_nir``
               builds); a ``"subtract"`` network, and ``Synaptic``'s default
               ``reset_delay=True`` (which discards the step after a spike), differ from the
               file.
``norse``      ``--dt`` (``to_nir``'s ``dt``, default 1e-3). Norse 1.1.0 writes
               ``tau = dt/tau_inv``, i.e. ``dt·tau``: the true ``tau`` is ``tau_file/dt``.
               ``LIFBoxCell``: ``v += dt·tau_inv·(v_leak − v + x)``; ``LIFCell`` (written
               as ``CubaLIF`` with ``r = w_in = 1``): ``i' = i + x``, ``v += dt·tau_mem_inv
               ·(v_leak − v + i')``, then ``i = i'·(1 − dt·tau_syn_inv)`` (the input is not
               scaled by ``dt/tau_syn``); ``IAFCell``: ``v += x``. Fires on ``v > θ``,
               resets to ``v_reset``, starts at ``v_leak``.
``spikingjelly`` ``--dt`` (``export_to_nir``'s ``dt``, default 1e-4): ``LIFNode(τ)`` is
               ``LIF(tau = τ·dt, r = 1 or τ, v_leak = v_reset)`` (``decay_input`` True/False),
               ``IFNode`` is ``IF(r = 1/dt)``, ``CUBALIFNode`` the snnTorch form: all forward
               Euler as ``nir``. Fires on ``v ≥ θ``; starts at ``v_reset``.
``sinabs``     ``dt = 1`` step (``tau`` counts steps), exponential decay ``α = exp(−1/tau)``:
               ``LIF``: ``v = α·v + r·x`` (``from_nir`` builds ``norm_input=False``),
               ``IF``: ``v = v + r·x``. Fires on ``v ≥ θ`` and resets by subtracting ``θ``
               (``MembraneSubtract``); starts at 0. One spike per step: sinabs's default
               ``MultiSpike`` agrees while no membrane reaches ``2θ`` in a step, and its
               importer's ``min_v_mem = −θ`` clamp on IF while no membrane falls below
               ``−θ`` (the file records neither).
=============  ==========================================================================

A NIR neuron maps onto our population (:mod:`..spiking.semantics`, ``u <- u(1−du) + c``,
``v <- v(1−dv) + u``) with the input ``c = g·x``: ``du``, ``dv`` and the input weight ``g``
are :class:`NeuronMap`. The membrane is shifted by the rest potential ``ρ`` (``v_leak`` of a
leaky node, the start potential of an IF node): ``v' = v − ρ`` obeys the same step without
the constant drive, with threshold ``θ − ρ``, reset ``v_reset − ρ`` and start ``v_init − ρ``
(exact: the update is affine in ``v``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pseudosnn.compiler.spiking.semantics import Dynamics, Fire, Reset

from pseudosnn.errors import PseudoSNNError, UsageError

UNIT_TOLERANCE = 1e-6
"""An input weight within this of 1 is 1: ``r·dt/tau`` of snnTorch's and SpikingJelly's files
is their unit input weight written through float32 (``r = tau/dt``), e.g. 0.99999995."""


class NirMappingError(PseudoSNNError, ValueError):
    """A NIR node or parameter with no exact mapping onto the spiking graph (names it)."""


@dataclass(frozen=True)
class Dialect:
    """One library's reading of a NIR file (module docstring)."""

    name: str
    library: str  # as shown in reports, e.g. "snnTorch 1.0.0"
    dt: float | None  # a step the library hard-codes (None: --dt is required)
    fire: Fire
    reset: Reset  # "hard": to the node's v_reset; "soft": subtract the threshold
    decay: Literal["euler", "exp"]
    start: Literal["zero", "v_leak", "v_reset"]  # membrane at step 0
    tau_is_dt_times_tau: bool = False  # Norse 1.1.0's exporter bug
    if_input: Literal["r_dt", "r"] = "r_dt"  # IF: v += dt·r·x or v += r·x
    cuba_input: Literal["euler", "norse"] = "euler"  # CubaLIF: I += (dt/tau_syn)·w_in·x or x
    note: str = ""  # what the file cannot say about the library's own network


DIALECTS: dict[str, Dialect] = {d.name: d for d in (
    Dialect("nir", "NIR (forward Euler)", None, ">", "hard", "euler", "v_leak"),
    Dialect("snntorch", "snnTorch 1.0.0", 1e-4, ">", "hard", "euler", "zero",
            note="snnTorch writes every neuron as reset-to-zero: a network trained with "
                 "reset_mechanism='subtract' (snnTorch's default) runs here, as in snnTorch's "
                 "own import_from_nir, with reset to zero"),
    Dialect("norse", "Norse 1.1.0", None, ">", "hard", "euler", "v_leak",
            tau_is_dt_times_tau=True, if_input="r", cuba_input="norse"),
    Dialect("spikingjelly", "SpikingJelly 2.0.0", None, ">=", "hard", "euler", "v_reset"),
    Dialect("sinabs", "sinabs 3.1.3", 1.0, ">=", "soft", "exp", "zero", if_input="r",
            note="sinabs's MultiSpike and its importer's min_v_mem clamp are not in the file: "
                 "spikes agree with one spike per step while no membrane reaches twice its "
                 "threshold (or falls below minus it)"),
)}


def resolve_dt(dialect: Dialect, dt: float | None, needed_by: str | None) -> float | None:
    """The step ``dt``: the dialect's own where the library hard-codes it (a different
    ``--dt`` is refused), else ``--dt``, which is required when ``needed_by`` (the first
    node with time constants) is not None."""
    if dialect.dt is not None:
        if dt is not None and not np.isclose(dt, dialect.dt, rtol=1e-9, atol=0):
            raise UsageError(f"--from {dialect.name}: {dialect.library} fixes dt = "
                             f"{dialect.dt:g}; --dt {dt:g} would not reproduce its network "
                             "(drop --dt)")
        return dialect.dt
    if dt is None and needed_by is not None:
        raise UsageError(f"node {needed_by} has time constants and NIR stores no time step: "
                         f"give --dt (the dt {dialect.library} exported with, in the unit of "
                         "its tau; e.g. --dt 1e-3 for Norse's default, 1e-4 for "
                         "SpikingJelly's)")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise UsageError(f"--dt must be a positive number, got {dt}")
    return dt


@dataclass(frozen=True)
class NeuronMap:
    """A NIR neuron as a population: dynamics, threshold, start potential ``v0`` and the
    input weight ``g`` (per neuron) that multiplies every incoming current."""

    dynamics: Dynamics
    threshold: float
    v0: float
    scale: np.ndarray


@dataclass(frozen=True)
class ReadoutMap:
    """A non-spiking NIR node (LI, I) as the readout: its value after ``N`` steps is
    ``sum_k (1−decay)^(N−1−k)·(g·x_k + drive) + (1−decay)^N·start``."""

    decay: float
    scale: np.ndarray
    drive: float
    start: float

    def constant(self, per_step: np.ndarray, steps: int) -> np.ndarray:
        """The value a constant per-step input ``per_step`` (before ``g``) and the drive and
        start contribute after ``steps`` steps."""
        keep = 1.0 - self.decay
        total = float(steps) if keep == 1.0 else (1.0 - keep ** steps) / (1.0 - keep)
        return (self.scale * per_step + self.drive) * total + keep ** steps * self.start


def uniform(where: str, node, field: str) -> float:
    """The one value of a per-neuron parameter (our population has one per layer)."""
    a = np.asarray(getattr(node, field), dtype=np.float64)
    if a.size == 0 or not np.all(a == a.flat[0]):
        raise NirMappingError(f"{where}: {field} differs across neurons; a population has one "
                              f"{field} per layer")
    value = float(a.flat[0])
    if not np.isfinite(value):
        raise NirMappingError(f"{where}: {field} = {value} is not finite")
    return value


def _unit(g: np.ndarray) -> np.ndarray:
    """The input weight, 1 where it is 1 up to float32 rounding, one value when uniform."""
    g = np.asarray(g, dtype=np.float64)
    g = np.where(np.abs(g - 1.0) <= UNIT_TOLERANCE, 1.0, g)
    return np.asarray(g.flat[0]) if g.size and np.all(g == g.flat[0]) else g


def _tau(where: str, node, field: str, d: Dialect, dt: float) -> float:
    tau = uniform(where, node, field)
    if d.tau_is_dt_times_tau:
        tau = tau / dt
    if tau <= 0:
        raise NirMappingError(f"{where}: {field} = {tau:g} must be positive")
    return tau


def _decay(where: str, tau: float, d: Dialect, dt: float) -> float:
    """The voltage (or current) decay of one step: ``dt/tau`` (Euler) or ``1 − exp(−dt/tau)``."""
    dv = dt / tau if d.decay == "euler" else float(-np.expm1(-dt / tau))
    if not 0.0 <= dv <= 1.0:
        raise NirMappingError(f"{where}: tau = {tau:g} with dt = {dt:g} decays by {dv:g} per "
                              "step (Euler is stable only for dt <= tau); is --dt right?")
    return dv


def _start(where: str, node, d: Dialect, leak: float) -> float:
    if d.start == "v_leak":
        return leak
    if d.start == "v_reset":
        return uniform(where, node, "v_reset") if hasattr(node, "v_reset") else 0.0
    return 0.0


def neuron_map(where: str, node, kind: str, d: Dialect, dt: float | None) -> NeuronMap:
    """The population of NIR neuron ``node`` of type ``kind`` (``IF``, ``LIF``, ``CubaLIF``
    or ``Threshold``) under dialect ``d`` (module docstring); ``where`` names it in errors."""
    du, dv, leak = 1.0, 0.0, 0.0
    if kind == "Threshold":
        theta = uniform(where, node, "threshold")
        return _checked(where, Dynamics(du=1.0, dv=1.0, reset="hard", v_reset=0.0, fire=">"),
                        theta, 0.0, _unit(np.ones(np.shape(node.threshold))))
    r = np.asarray(node.r, dtype=np.float64)
    if kind == "IF":
        g = r * dt if d.if_input == "r_dt" else r
    elif kind == "LIF":
        dv = _decay(where, _tau(where, node, "tau", d, dt), d, dt)
        leak = uniform(where, node, "v_leak")
        g = r * dv if d.decay == "euler" else r
    elif kind == "CubaLIF":
        if d.decay != "euler":
            raise NirMappingError(f"{where}: {d.library} writes no CubaLIF (its synaptic "
                                  "current is dropped on export); import it with --from nir")
        du = _decay(where, _tau(where, node, "tau_syn", d, dt), d, dt)
        dv = _decay(where, _tau(where, node, "tau_mem", d, dt), d, dt)
        leak = uniform(where, node, "v_leak")
        w_in = np.asarray(node.w_in, dtype=np.float64)
        g = w_in * r * dv * (du if d.cuba_input == "euler" else 1.0)
    else:
        raise NirMappingError(f"{where}: {kind} is not a spiking neuron")
    theta = uniform(where, node, "v_threshold")
    v_reset = uniform(where, node, "v_reset")
    start = _start(where, node, d, leak)
    rest = leak if kind != "IF" else start
    dyn = Dynamics(du=du, dv=dv, reset=d.reset, v_reset=v_reset - rest, fire=d.fire)
    return _checked(where, dyn, theta - rest, start - rest, _unit(g))


def _checked(where: str, dyn: Dynamics, theta: float, v0: float,
             scale: np.ndarray) -> NeuronMap:
    problem = dyn.problem(theta, v0)
    if problem:
        raise NirMappingError(f"{where}: {problem} (membrane measured from its rest "
                              "potential)")
    return NeuronMap(dyn, theta, v0, scale)


def readout_map(where: str, node, kind: str, d: Dialect, dt: float | None) -> ReadoutMap:
    """The readout of a non-spiking NIR node (``LI`` or ``I``) under dialect ``d``."""
    r = np.asarray(node.r, dtype=np.float64)
    if kind == "I":
        g = r * dt if d.if_input == "r_dt" else r
        return ReadoutMap(0.0, _unit(g), 0.0, 0.0)
    if kind != "LI":
        raise NirMappingError(f"{where}: a {kind} readout has no exact mapping (our readout "
                              "integrates with one decay: LI and I are supported)")
    decay = _decay(where, _tau(where, node, "tau", d, dt), d, dt)
    leak = uniform(where, node, "v_leak")
    g = r * decay if d.decay == "euler" else r
    start = leak if d.start == "v_leak" else 0.0
    return ReadoutMap(decay, _unit(g), decay * leak, start)
