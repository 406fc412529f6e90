"""A rate window in closed form (``simulator/closed_form.py``) is the stepped window:
counts are ``semantics.rate_spike_count`` bit for bit; the train equals ``if_step`` stepped
``T`` times wherever stepping is exact (dyadic float currents; integers, saturation
included, for thresholds up to 2**22)."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.compiler.spiking.semantics import V_MAX, if_step, rate_spike_count
from pseudosnn.simulator.closed_form import SATURATION_FREE_THETA, Window


def _stepped(c, T, theta, v0, fixed):
    """The literal loop: ``if_step`` with the window's activity mask, ``T.max()`` times."""
    v = np.full(c.shape, v0, dtype=c.dtype)
    train = []
    for k in range(int(T.max())):
        v, s = if_step(v, c, theta, active=k < T, saturate=fixed)
        train.append(s)
    return np.stack(train)


def _currents(rng, shape, theta, fixed):
    """Silent (``c <= 0``), saturated (``c >= theta``) and live neurons; floats on a dyadic
    grid (stepping them is exact)."""
    u = rng.uniform(-0.5, 1.5, shape) * theta
    if fixed:
        u[0, :3] = [V_MAX, 4 * V_MAX, -4 * V_MAX]  # the 24-bit clip engages
        return np.round(u).astype(np.int64)
    return np.round(u * 256) / 256


@pytest.mark.parametrize("fixed,theta", [(False, 1.0), (False, 2.0), (True, 256),
                                         (True, SATURATION_FREE_THETA)])
@pytest.mark.parametrize("uniform", [True, False])
def test_closed_form_window_is_the_stepped_window(fixed, theta, uniform):
    rng = np.random.default_rng(int(theta) + uniform)
    n = 40
    T = np.full(n, 7) if uniform else rng.integers(1, 9, n)
    v0 = theta // 2 if fixed else theta / 2
    c = _currents(rng, (5, n), theta, fixed)
    win = Window(c, T, uniform, theta, v0, fixed)
    counts = np.empty(c.shape, np.int64)
    win.counts(counts)
    np.testing.assert_array_equal(counts, rate_spike_count(c, T, theta, v0))
    train = np.empty((win.t_max, 5, n), bool)
    win.train(train)
    np.testing.assert_array_equal(train, _stepped(c, T, theta, v0, fixed))
    np.testing.assert_array_equal(train.sum(axis=0), counts)
    np.testing.assert_array_equal(win.per_step(), train.sum(axis=(1, 2)))
    assert (c <= 0).any() and (c >= theta).any() and ((c > 0) & (c < theta)).any()
