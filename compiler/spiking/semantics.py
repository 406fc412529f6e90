"""The deployed neuron, written once (DESIGN.md §2). Every other implementation
(the torch eval forward, the simulator, the Lava process models) is tested against
these pure functions.

**Integrate-and-fire** (no leak, soft reset, the default): a population integrates a
current ``c`` into its membrane ``v`` once per step, fires when ``v >= theta`` (at most one
spike per neuron per step) and resets by subtraction:
``v <- v + c;  s = [v >= theta];  v <- v - s*theta`` (:func:`if_step`). Starting from ``v0``
with a constant current for ``T`` steps the count has the closed form

    n = clamp(floor((v0 + T*c) / theta), 0, T)

which for the default ``v0 = theta/2`` is ``clamp(floor(T*c/theta + 1/2), 0, T)``:
a rate-coupled population is exactly the quantised activation
``round(clip(c/theta, 0, 1) * T) / T`` (round half up).

**Leaky and hard-reset dynamics** (:class:`Dynamics`, :func:`lif_step`), Lava's ``LIF``
with a current decay ``du`` and a voltage decay ``dv``::

    u <- u*(1 - du) + c          (du = 1: no synaptic current state, u = c)
    v <- v*(1 - dv) + u
    s = [v >= theta]  or  [v > theta]      (the family's comparison; Lava's LIF uses >)
    v <- v - s*theta  (soft)   or   v <- v_reset where s  (hard)

The bias is part of the step's current ``c`` (synaptic input + encoder drive + bias), as
in the IF step: with ``du = 1`` (every trained family) this is Lava's voltage bias
``v*(1-dv) + u + b``, and it enters only inside the window, where Lava's own bias would
integrate at every step. ``du = 1, dv = 0``, soft reset and ``>=`` is the IF step, bit for
bit. Only that case has the closed form above (:func:`has_closed_form`); every other
count and spike train (what a spike pool ORs) is stepped (:func:`constant_current_counts`,
:func:`constant_current_train`).

**Fixed point.** IF populations work in integer units with a 24-bit saturating membrane
(``v`` clipped to ``[V_MIN, V_MAX]`` after every integration). Every other population
follows Loihi's bit-accurate LIF (lava ``PyLifModelBitAcc``): state in units of
``2**-ACTIVATION_SHIFT`` of the population's integer unit (the input, threshold, ``v0``
and ``v_reset`` are MSB-aligned by ``<< 6``), 12-bit decays ``d12 = d*4096``,
``decay(x, d12) = sign(y)*(|y| >> 12)`` with ``y = x*(4096 - d12)`` (truncation toward 0),
``u`` wrapped to 24 bits (``u > 2**23``: ``- 2**24``; ``u <= -2**23``: ``+ 2**24``), ``v``
clipped to ``[-(2**23 - 1), 2**23 - 1]``.

Works for float arrays and, unchanged, for integer (fixed-point) arrays: with integer
``v0``, ``c`` and ``theta`` every operation below is exact integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

MEMBRANE_BITS = 24
"""Fixed-point membrane width (Loihi, Lava bit-accurate models): v is saturated to
``[-2**23, 2**23 - 1]`` after every integration."""
V_MIN = -(2 ** (MEMBRANE_BITS - 1))
V_MAX = 2 ** (MEMBRANE_BITS - 1) - 1
DECAY_BITS = 12
"""Loihi's decays are 12-bit: ``d12 = d * 2**12`` (lava ``PyLifModelBitAcc.decay_shift``)."""
DECAY_UNITY = 2 ** DECAY_BITS
ACTIVATION_SHIFT = 6
"""Loihi MSB-aligns the synaptic input and the threshold by 6 bits (lava
``PyLifModelBitAcc.act_shift``/``vth_shift``): the LIF state is in 1/64 integer units."""
LOIHI_V_LIMIT = 2 ** (MEMBRANE_BITS - 1) - 1
"""Loihi's LIF clips ``v`` to ``[-(2**23 - 1), 2**23 - 1]`` (lava ``subthr_dynamics``)."""

Reset = Literal["soft", "hard"]
Fire = Literal[">=", ">"]


@dataclass(frozen=True)
class Dynamics:
    """How a population's membrane evolves (module docstring): current decay ``du`` and
    voltage decay ``dv`` in ``[0, 1]``, ``reset`` soft (subtract θ) or hard (set to
    ``v_reset``), and the firing comparison ``fire`` (``">="``: ``v >= θ``; ``">"``:
    ``v > θ``, Lava's LIF). The default is the integrate-and-fire neuron."""

    du: float = 1.0
    dv: float = 0.0
    reset: Reset = "soft"
    v_reset: float = 0.0
    fire: Fire = ">="

    @property
    def is_if(self) -> bool:
        """The integrate-and-fire step (:func:`if_step`) with its closed form."""
        return self.du == 1 and self.dv == 0 and self.reset == "soft" and self.fire == ">="

    @property
    def decays(self) -> int:
        """Decay multiplies per neuron update: one for ``u`` when ``0 < du < 1`` (``du = 1``
        forgets, ``du = 0`` keeps: no multiply), one for ``v`` when ``dv > 0``."""
        return int(0 < self.du < 1) + int(self.dv > 0)

    def problem(self, theta: float, v0: float) -> str | None:
        """What makes these dynamics invalid for threshold ``theta`` and start ``v0`` (None:
        valid): decays outside [0, 1], a reset or start value that fires by itself."""
        for name, d in (("current decay du", self.du), ("voltage decay dv", self.dv)):
            if not 0.0 <= d <= 1.0:
                return f"{name}={d:g} is outside [0, 1]"
        if self.reset not in ("soft", "hard") or self.fire not in (">=", ">"):
            return f"unknown reset {self.reset!r} or comparison {self.fire!r}"
        if self.reset == "hard" and fires(np.asarray(self.v_reset), theta, self.fire):
            return (f"hard-reset value v_reset={self.v_reset:g} is at or above the threshold "
                    f"{theta:g} (the neuron would fire at every step after its first spike)")
        if v0 < 0 or fires(np.asarray(v0), theta, self.fire):
            bracket = ")" if self.fire == ">=" else "]"
            return f"start potential v0={v0:g} must lie in [0, threshold={theta:g}{bracket}"
        return None


def has_closed_form(dyn: Dynamics) -> bool:
    """Only the integrate-and-fire neuron has the rate closed form of the module
    docstring; every other count of a constant current is stepped."""
    return dyn.is_if


def fires(v: np.ndarray, theta, fire: Fire = ">=") -> np.ndarray:
    """The firing comparison: ``v >= theta`` or ``v > theta``."""
    return np.greater_equal(v, theta) if fire == ">=" else np.greater(v, theta)


def state_scale(dyn: Dynamics, fixed: bool) -> int:
    """Integer state units per population unit: ``2**ACTIVATION_SHIFT`` for a fixed-point
    population with Loihi's LIF arithmetic (every non-IF one), else 1."""
    return 2 ** ACTIVATION_SHIFT if fixed and not dyn.is_if else 1


def decay_int(d: float) -> int:
    """A decay in ``[0, 1]`` as Loihi's 12-bit integer ``round(d * 4096)``."""
    return int(round(float(d) * DECAY_UNITY))


def _decay_fixed(x: np.ndarray, d12: int) -> np.ndarray:
    """Loihi: ``sign(y) * (|y| >> 12)`` with ``y = x * (4096 - d12)`` (int64)."""
    y = np.asarray(x, dtype=np.int64) * (DECAY_UNITY - d12)
    return np.sign(y) * np.right_shift(np.abs(y), DECAY_BITS)


def _wrap24(u: np.ndarray) -> np.ndarray:
    """Loihi's 24-bit wrap of the current, exactly as lava writes it (``2**23`` stays)."""
    half = 2 ** (MEMBRANE_BITS - 1)
    w = np.where(u > half, u - 2 * half, u)
    return np.where(w <= -half, u + 2 * half, w)


def if_step(
    v: np.ndarray, current: np.ndarray, theta, active: np.ndarray | bool = True,
    saturate: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One integrate-and-fire step with soft reset; returns ``(v_new, spikes)``.

    ``active`` masks neurons outside their window (they neither integrate nor fire).
    ``saturate`` clips the membrane to the 24-bit fixed-point range (integer mode).
    """
    v_int = v + np.where(active, current, 0)
    if saturate:
        v_int = np.clip(v_int, V_MIN, V_MAX)
    spikes = (v_int >= theta) & active
    v_new = v_int - np.where(spikes, theta, 0)
    return v_new.astype(v.dtype, copy=False), spikes


def lif_integrate(
    v: np.ndarray, u: np.ndarray | None, current: np.ndarray, dyn: Dynamics,
    active: np.ndarray | bool = True, fixed: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The sub-threshold half of :func:`lif_step`: ``(v, u)`` after integrating ``current``.

    Float: ``u = u*(1-du) + c`` (``c`` itself when ``du = 1``), ``v = v*(1-dv) + u``: the
    operations of lava ``AbstractPyLifModelFloat.subthr_dynamics``. Fixed point: ``v``,
    ``u`` in state units (:func:`state_scale`), ``current`` in population units, Loihi's
    arithmetic (``AbstractPyLifModelFixed.subthr_dynamics``). Neurons outside their window
    (``active`` False) keep ``v`` and ``u``. ``u`` is None when ``du = 1`` (no state)."""
    if fixed:
        a = np.left_shift(np.asarray(current, dtype=np.int64), ACTIVATION_SHIFT)
        du12, dv12 = decay_int(dyn.du), decay_int(dyn.dv)
        u_new = _wrap24(a if u is None else _decay_fixed(u, du12) + a)
        v_dec = v if dv12 == 0 else _decay_fixed(v, dv12)
        v_new = np.clip(v_dec + u_new, -LOIHI_V_LIMIT, LOIHI_V_LIMIT)
    else:
        u_new = current if u is None else u * (1 - dyn.du) + current
        v_new = v * (1 - dyn.dv) + u_new if dyn.dv else v + u_new
    if active is not True:
        v_new = np.where(active, v_new, v)
        u_new = u_new if u is None else np.where(active, u_new, u)
    v_new = np.asarray(v_new).astype(np.asarray(v).dtype, copy=False)
    return v_new, (None if u is None else np.asarray(u_new).astype(u.dtype, copy=False))


def fire_and_reset(v: np.ndarray, theta, dyn: Dynamics, active: np.ndarray | bool = True,
                   fixed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The firing half of :func:`lif_step`: ``s = [v >= θ]`` (or ``>``) where active, then
    the soft (``v - s·θ``) or hard (``v_reset`` where ``s``) reset; ``θ`` and ``v_reset`` in
    population units (scaled to state units in fixed point)."""
    scale = 2 ** ACTIVATION_SHIFT if fixed else 1
    theta_s = int(theta) * scale if fixed else theta
    spikes = fires(v, theta_s, dyn.fire) & active
    if dyn.reset == "soft":
        v_new = v - np.where(spikes, theta_s, 0)
    else:
        v_reset = int(dyn.v_reset) * scale if fixed else dyn.v_reset
        v_new = np.where(spikes, v_reset, v)
    return np.asarray(v_new).astype(v.dtype, copy=False), spikes


def lif_step(
    v: np.ndarray, u: np.ndarray | None, current: np.ndarray, theta, dyn: Dynamics,
    active: np.ndarray | bool = True, fixed: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One step of the leaky/hard-reset neuron (module docstring): :func:`lif_integrate`
    then :func:`fire_and_reset`; returns ``(v_new, u_new, spikes)``."""
    v, u = lif_integrate(v, u, current, dyn, active, fixed)
    v, spikes = fire_and_reset(v, theta, dyn, active, fixed)
    return v, u, spikes


def neuron_step(
    v: np.ndarray, u: np.ndarray | None, current: np.ndarray, theta, dyn: Dynamics,
    active: np.ndarray | bool = True, fixed: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One step of any population: :func:`if_step` (24-bit saturation in fixed point) for
    the integrate-and-fire neuron, :func:`lif_step` otherwise."""
    if dyn.is_if:
        v_new, spikes = if_step(v, current, theta, active, saturate=fixed)
        return v_new, u, spikes
    return lif_step(v, u, current, theta, dyn, active, fixed)


def initial_state(shape, v0, dyn: Dynamics, fixed: bool, dtype
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(v, u)`` at the start of a window: ``v = v0`` (in state units), ``u = 0`` (None
    when the current has no state, ``du = 1``)."""
    v = np.full(shape, v0 * state_scale(dyn, fixed), dtype=dtype)
    return v, (None if dyn.du == 1 else np.zeros(shape, dtype=dtype))


def constant_current_counts(current: np.ndarray, timesteps, theta, v0, dyn: Dynamics,
                            fixed: bool = False) -> np.ndarray:
    """Spike counts of neurons driven by a constant ``current`` for their ``timesteps``:
    the closed form (:func:`rate_spike_count`) where it exists, else stepped with
    :func:`lif_step` from :func:`initial_state`."""
    if has_closed_form(dyn):
        return rate_spike_count(current, timesteps, theta, v0)
    train = constant_current_train(current, timesteps, theta, v0, dyn, fixed)
    return train.sum(axis=0, dtype=np.int64)


def constant_current_train(current: np.ndarray, timesteps, theta, v0, dyn: Dynamics,
                           fixed: bool = False) -> np.ndarray:
    """Spike train ``(T_max, *c)`` bool of neurons driven by a constant ``current`` for
    their ``timesteps``: :func:`rate_spike_train` where the closed form exists, else the
    spikes of :func:`lif_step` step by step."""
    t_max = int(np.max(timesteps))
    if has_closed_form(dyn):
        return rate_spike_train(current, timesteps, theta, v0, t_max)
    return np.stack([s for s, _, _ in _step_constant(current, timesteps, theta, v0, dyn,
                                                     fixed)])


def count_margin(current: np.ndarray, timesteps, theta, v0, dyn: Dynamics) -> np.ndarray:
    """How far each float count is from a tie, relative to θ (a count can flip under a
    change of float rounding only where this is ~0): :func:`rate_margin` where the closed
    form exists, else the smallest ``|v - θ|/θ`` at a firing decision."""
    if has_closed_form(dyn):
        return rate_margin(current, timesteps, theta, v0)
    margin = np.full(np.shape(current), np.inf)
    for _, m, active in _step_constant(current, timesteps, theta, v0, dyn, False):
        margin = np.where(active, np.minimum(margin, m), margin)
    return margin


def _step_constant(current, timesteps, theta, v0, dyn: Dynamics, fixed: bool
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A constant current stepped through the windows: per step ``k < T_max`` the spikes,
    ``|v - θ|/θ`` at the firing decision, and which neurons are inside their window."""
    c = np.asarray(current)
    T = np.broadcast_to(np.asarray(timesteps), c.shape)
    v, u = initial_state(c.shape, v0, dyn, fixed, np.int64 if fixed else np.float64)
    theta_s = theta * state_scale(dyn, fixed)
    for k in range(int(T.max(initial=0))):
        active = k < T
        v, u = lif_integrate(v, u, c, dyn, active, fixed)
        margin = np.abs(v - theta_s) / (abs(theta_s) or 1)
        v, s = fire_and_reset(v, theta, dyn, active, fixed)
        yield s, margin, active


def rate_spike_count(current: np.ndarray, timesteps, theta, v0) -> np.ndarray:
    """Closed-form spike count of a neuron driven by a constant current for ``timesteps``
    steps: ``clamp(floor((v0 + T*c)/theta), 0, T)``. Integer inputs give exact integers
    (floor division); valid for any ``c`` given ``0 <= v0 < theta``."""
    current = np.asarray(current)
    T = np.asarray(timesteps)
    if np.issubdtype(current.dtype, np.integer):
        n = np.floor_divide(v0 + T * current, theta)
    else:
        n = np.floor((v0 + T * current) / theta)
    return np.clip(n, 0, T).astype(np.int64)


def quantised_rate(current: np.ndarray, timesteps, theta: float = 1.0) -> np.ndarray:
    """The ANN view of a rate-coupled population with ``v0 = theta/2``:
    ``floor(clip(c/theta, 0, 1)*T + 1/2) / T``, i.e. ``n/T``."""
    T = np.asarray(timesteps)
    return rate_spike_count(current, T, theta, theta / 2.0) / T


def rate_margin(current: np.ndarray, timesteps, theta, v0) -> np.ndarray:
    """Distance of ``(v0 + T·c)/θ`` to the nearest integer: the closed-form count can flip
    under a change of float rounding only where this is ~0 (a tie)."""
    T = np.asarray(timesteps, dtype=np.float64)
    q = (v0 + T * np.asarray(current)) / theta
    return np.abs(q - np.round(q))


def rate_spike_train(current: np.ndarray, timesteps, theta, v0, steps: int) -> np.ndarray:
    """Closed-form spike train of neurons driven by a constant current, ``(steps, *c)``
    bool: the count after ``k`` steps is ``N(k) = rate_spike_count(c, min(k, T), θ, v0)``,
    so step ``k`` fires iff ``N(k + 1) > N(k)`` (no spike after the window)."""
    current = np.asarray(current)
    T = np.asarray(timesteps)
    counts = [rate_spike_count(current, np.minimum(k, T), theta, v0) for k in range(steps + 1)]
    return np.stack([b > a for a, b in zip(counts, counts[1:], strict=False)])
