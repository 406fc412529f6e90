"""The deployed neuron, written once (DESIGN.md §2). Every other implementation
(the torch eval forward, the simulator, the Lava process models) is tested against
these pure functions.

A population integrates a current ``c`` into its membrane ``v`` once per step, fires when
``v >= theta`` (at most one spike per neuron per step) and resets by subtraction
("soft" reset): ``v <- v + c;  s = [v >= theta];  v <- v - s*theta``.
Starting from ``v0`` with a constant current for ``T`` steps the count has the closed form

    n = clamp(floor((v0 + T*c) / theta), 0, T)

which for the default ``v0 = theta/2`` is ``clamp(floor(T*c/theta + 1/2), 0, T)``:
a rate-coupled population is exactly the quantised activation
``round(clip(c/theta, 0, 1) * T) / T`` (round half up).

Works for float arrays and, unchanged, for integer (fixed-point) arrays: with integer
``v0``, ``c`` and ``theta`` every operation below is exact integer arithmetic.
"""

from __future__ import annotations

import numpy as np

MEMBRANE_BITS = 24
"""Fixed-point membrane width (Loihi, Lava bit-accurate models): v is saturated to
``[-2**23, 2**23 - 1]`` after every integration."""
V_MIN = -(2 ** (MEMBRANE_BITS - 1))
V_MAX = 2 ** (MEMBRANE_BITS - 1) - 1


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
