"""A rate population's whole window in closed form (DESIGN.md §2): no time loop over membranes.

Driven by a constant current ``c`` from ``0 <= v0 < θ`` (the integrate-and-fire neuron:
soft reset, no leak, fires at ``v >= θ``), a neuron has fired ``N_k =
semantics.rate_spike_count(c, min(k, T_i), θ, v0) = clamp(floor((v0 + k·c)/θ), 0, k)``
times after ``k`` steps of its window, and it spikes at step ``k`` exactly when
``N_{k+1} > N_k``. This module computes the window's counts ``N_{T_i}``, its spikes per step
``S_{k+1} − S_k`` (``S_k = Σ_i N_k``) and, when asked, the train itself, with the very
operations of ``rate_spike_count``, so the counts are the reference's bit for bit.

Integer (fixed-point) arithmetic is the 24-bit saturating membrane of ``semantics.if_step``
exactly while ``θ <= 2**22``: a neuron with ``0 < c < θ`` keeps ``v < 2θ <= V_MAX + 1``; one
with ``c >= θ`` fires every step (saturated or not), one with ``c <= 0`` never
(:func:`exact_for`). Per-step totals step only the neurons whose train is not known in
advance: ``c <= 0`` never fires, ``c >= θ`` fires every active step (for floats when
``θ = 1``, where ``fl(k·c) >= k`` follows from rounding being monotone; compiled graphs
have ``θ = 1``).
"""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler.spiking.graph import Population
from pseudosnn.compiler.spiking.semantics import V_MAX, has_closed_form

SATURATION_FREE_THETA = (V_MAX + 1) // 2
"""Largest fixed-point threshold whose live neurons (``0 < c < θ``) cannot saturate."""
CHUNK_ELEMENTS = 1 << 14
"""Live neurons taken through all steps together (cache blocking: a chunk's currents and
scratch stay in L2 for the whole window; 16k measured as good as 4k-64k here)."""


def exact_for(pop: Population, fixed: bool) -> bool:
    """Whether the closed form is the stepped window exactly: rate coupling, the
    integrate-and-fire neuron (``semantics.has_closed_form``; leaky and hard-reset ones
    step), integers without saturation."""
    return pop.coupling == "rate" and has_closed_form(pop.dynamics) and (
        not fixed or pop.threshold <= SATURATION_FREE_THETA)


def counts_after(c: np.ndarray, k, theta, v0, fixed: bool) -> np.ndarray:
    """``N_k = clamp(floor((v0 + k·c)/θ), 0, k)``: ``semantics.rate_spike_count``'s own
    operations (``k`` a step count or per-neuron ``min(k, T_i)``), in ``c``'s dtype."""
    return np.clip(_unclipped(c, k, theta, v0, fixed), 0, k)


def _unclipped(c, k, theta, v0, fixed: bool):
    return np.floor_divide(v0 + k * c, theta) if fixed else np.floor((v0 + k * c) / theta)


class Window:
    """One rate population's window on a batch: constant currents ``c`` ``(B, N)``, per-neuron
    ``T`` ``(N,)`` (or one ``T``), threshold ``theta``, start potential ``v0``."""

    def __init__(self, c: np.ndarray, T: np.ndarray, uniform: bool, theta, v0, fixed: bool):
        self.c, self.T, self.uniform = c, T, uniform
        self.theta, self.v0, self.fixed = theta, v0, fixed
        self.t_max = int(T.max())

    def steps(self, k: int):
        """``min(k, T_i)``: a neuron's active steps among the first ``k``."""
        return k if self.uniform else np.minimum(k, self.T)

    def counts(self, out: np.ndarray) -> None:
        """``N_{T_i}`` of every neuron into ``out`` (int64 ``(B, N)``), chunk by chunk."""
        c, buf, flat = self.c.reshape(-1), None, out.reshape(-1)
        T = None if self.uniform else np.broadcast_to(self.T, self.c.shape).reshape(-1)
        for i0 in range(0, c.size, CHUNK_ELEMENTS):
            cc = c[i0:i0 + CHUNK_ELEMENTS]
            buf = np.empty(cc.size, c.dtype) if buf is None or buf.size != cc.size else buf
            kk = self.t_max if T is None else T[i0:i0 + CHUNK_ELEMENTS]
            flat[i0:i0 + cc.size] = _counts_after_into(cc, kk, self.theta, self.v0,
                                                       self.fixed, buf)

    def train(self, out: np.ndarray) -> None:
        """The spikes, ``out[k] = N_{k+1} > N_k`` (``out``: bool ``(t_max, B, N)``)."""
        prev = 0
        for k in range(self.t_max):
            n = counts_after(self.c, self.steps(k + 1), self.theta, self.v0, self.fixed)
            np.greater(n, prev, out=out[k])
            prev = n

    def per_step(self) -> np.ndarray:
        """Spikes per step of the window, summed over the batch and the population, int64
        ``(t_max,)``. Neurons whose train is known (silent, or firing every active step)
        are counted without stepping."""
        c, theta = self.c, self.theta
        full = c >= theta if (self.fixed or theta == 1) else np.zeros(c.shape, bool)
        live = (c > 0) & ~full
        sums = np.zeros(self.t_max + 1, np.int64)
        if self.uniform:
            sums += np.count_nonzero(full) * np.arange(self.t_max + 1)
        else:
            per_neuron = np.count_nonzero(full, axis=0)  # active steps of full neurons
            for k in range(1, self.t_max + 1):
                sums[k] = int(np.dot(per_neuron, np.minimum(k, self.T)))
        idx = np.flatnonzero(live)
        if idx.size:
            T_live = None if self.uniform else self.T[idx % self.T.size]
            sums[1:] += _live_sums(c.reshape(-1)[idx], T_live, self.t_max, theta, self.v0,
                                   self.fixed)
        return np.diff(sums)


def _live_sums(c: np.ndarray, T: np.ndarray | None, t_max: int, theta, v0,
               fixed: bool) -> np.ndarray:
    """``S_k = Σ_i N_k(i)`` for ``k = 1..t_max`` over neurons with currents ``c`` (flat),
    chunk by chunk (each chunk through all steps)."""
    sums = np.zeros(t_max, np.int64)
    buf = np.empty(min(CHUNK_ELEMENTS, c.size), dtype=c.dtype)
    for i0 in range(0, c.size, CHUNK_ELEMENTS):
        cc = c[i0:i0 + CHUNK_ELEMENTS]
        b = buf[:cc.size]
        TT = None if T is None else T[i0:i0 + CHUNK_ELEMENTS]
        # unclipped N_k is >= 0 for c > 0 and monotone in c: if the largest current's
        # stays within k at every k, no clip binds in the chunk
        c_hi = cc.max()
        bounded = all(_unclipped(c_hi, k, theta, v0, fixed) <= k for k in range(1, t_max + 1))
        for k in range(1, t_max + 1):
            kk = k if TT is None else np.minimum(k, TT)
            n = _counts_after_into(cc, kk, theta, v0, fixed, b, clip=not bounded)
            sums[k - 1] += int(n.sum())
    return sums


def _counts_after_into(c: np.ndarray, k, theta, v0, fixed: bool, out: np.ndarray,
                       clip: bool = True):
    """:func:`counts_after` in place in ``out`` (``c``'s dtype; the same operations, less
    those that cannot change a bit: a division by 1, the clip where it cannot bind)."""
    np.multiply(k, c, out=out, casting="unsafe")
    out += v0
    if fixed:
        np.floor_divide(out, theta, out=out)
    else:
        if theta != 1:
            out /= theta
        np.floor(out, out=out)
    return np.clip(out, 0, k, out=out) if clip else out
