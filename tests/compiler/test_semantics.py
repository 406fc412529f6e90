import numpy as np
import pytest
from pseudosnn.compiler.spiking.semantics import V_MAX, if_step, quantised_rate, rate_spike_count


def run_loop(c, T, theta, v0, saturate=False):
    v = np.full(np.shape(c), v0, dtype=np.asarray(c).dtype)
    n = np.zeros(np.shape(c), dtype=np.int64)
    for _ in range(int(np.max(T))):
        v, s = if_step(v, c, theta, saturate=saturate)
        n += s
    return n


@pytest.mark.parametrize("T", [1, 2, 3, 4, 7, 16])
def test_closed_form_equals_loop_float_with_ties(T):
    # dyadic currents are exact in binary floating point, so ties are real ties
    c = np.arange(-64, 2 * 64 * 2 + 1) / 128.0
    n_loop = run_loop(c, T, 1.0, 0.5)
    assert np.array_equal(n_loop, rate_spike_count(c, T, 1.0, 0.5))
    assert np.array_equal(n_loop / T, quantised_rate(c, T))


def test_closed_form_equals_loop_integer_random():
    rng = np.random.default_rng(1)
    theta = 256
    c = rng.integers(-300, 600, size=5000)
    for T in (1, 3, 8):
        assert np.array_equal(run_loop(c, T, theta, theta // 2),
                              rate_spike_count(c, T, theta, theta // 2))


def test_half_threshold_rounds_half_up():
    # c*T = k + 1/2 exactly: the loop (and the closed form) round up
    assert rate_spike_count(np.array([0.125]), 4, 1.0, 0.5)[0] == 1  # 0.5 -> 1
    assert rate_spike_count(np.array([0.375]), 4, 1.0, 0.5)[0] == 2  # 1.5 -> 2
    assert rate_spike_count(np.array([0.1]), 4, 1.0, 0.5)[0] == 0


def test_at_most_one_spike_per_step_and_saturation():
    c = np.array([5, V_MAX], dtype=np.int64)
    n = run_loop(c, 4, 2, 1, saturate=True)
    assert n.tolist() == [4, 4]
    v, _ = if_step(np.array([V_MAX], dtype=np.int64), np.array([V_MAX]), 2, saturate=True)
    assert v[0] <= V_MAX


@pytest.mark.parametrize("T", [1, 3, 8])
def test_closed_form_train_equals_the_loop_step_by_step(T):
    """``rate_spike_train``: step k fires iff the count after k + 1 steps exceeds the count
    after k (dyadic currents, per-neuron T up to ``T``, integer units too)."""
    from pseudosnn.compiler.spiking.semantics import rate_spike_train

    rng = np.random.default_rng(T)
    for c, theta, v0 in ((np.arange(-16, 3 * 64) / 64.0, 1.0, 0.5),
                         (rng.integers(-300, 600, size=400), 256, 128)):
        Ti = rng.integers(1, T + 1, size=np.shape(c))
        v = np.full(np.shape(c), v0, dtype=np.asarray(c).dtype)
        loop = []
        for k in range(T):
            v, s = if_step(v, c, theta, active=k < Ti)
            loop.append(s)
        np.testing.assert_array_equal(rate_spike_train(c, Ti, theta, v0, T), np.stack(loop))


# --- leak, hard reset, comparison (Dynamics, lif_step) ------------------------------------
from pseudosnn.compiler.spiking.semantics import (  # noqa: E402
    ACTIVATION_SHIFT,
    LOIHI_V_LIMIT,
    Dynamics,
    constant_current_counts,
    count_margin,
    initial_state,
    lif_step,
    neuron_step,
)


def test_lif_step_without_leak_is_the_if_step_bit_for_bit():
    rng = np.random.default_rng(0)
    v, c = rng.normal(0, 1, 1000), rng.normal(0.3, 0.7, 1000)
    active = rng.random(1000) < 0.8
    for _ in range(6):
        v_if, s_if = if_step(v, c, 0.9, active)
        v_lif, u, s_lif = lif_step(v, None, c, 0.9, Dynamics(), active)
        assert u is None and np.array_equal(s_if, s_lif)
        assert np.array_equal(v_if, v_lif)  # the same bits, not just close
        v = v_if


def test_lif_step_float_is_the_written_formula():
    rng = np.random.default_rng(1)
    dyn = Dynamics(du=0.3, dv=0.2, reset="hard", v_reset=-0.1, fire=">")
    v, u = rng.normal(0, 1, 500), rng.normal(0, 1, 500)
    c = rng.normal(0.2, 0.5, 500)
    v2, u2, s = lif_step(v, u, c, 0.5, dyn)
    u_ref = u * (1 - 0.3) + c
    v_ref = v * (1 - 0.2) + u_ref
    assert np.array_equal(u2, u_ref)
    assert np.array_equal(s, v_ref > 0.5)
    assert np.array_equal(v2, np.where(v_ref > 0.5, -0.1, v_ref))
    # soft reset and >= at an exact tie (0.5*(1 - 0.5) + 0.75 = 1); > does not fire there
    v3, _, s3 = lif_step(np.array([0.5]), None, np.array([0.75]), 1.0, Dynamics(dv=0.5))
    assert s3[0] and v3[0] == 0.0
    v4, _, s4 = lif_step(np.array([0.5]), None, np.array([0.75]), 1.0,
                         Dynamics(dv=0.5, fire=">"))
    assert not s4[0] and v4[0] == 1.0


def test_lif_step_inactive_neurons_neither_integrate_leak_nor_fire():
    dyn = Dynamics(du=0.5, dv=0.5, reset="hard")
    v, u = np.array([0.9, 0.9]), np.array([0.4, 0.4])
    v2, u2, s = lif_step(v, u, np.array([5.0, 5.0]), 1.0, dyn, np.array([True, False]))
    assert s.tolist() == [True, False] and v2[1] == 0.9 and u2[1] == 0.4 and v2[0] == 0.0


def test_fixed_point_lif_step_is_loihis_arithmetic():
    """Truncation toward zero of the 12-bit decays, ``<< 6`` on the input and threshold,
    the 24-bit wrap of ``u`` and clip of ``v`` (lava ``PyLifModelBitAcc``)."""
    dyn = Dynamics(du=0.5, dv=0.5, reset="hard", v_reset=3, fire=">")
    v, u = np.array([-5, 5, 2**23 - 1], np.int64), np.array([-3, 3, 0], np.int64)
    v2, u2, s = lif_step(v, u, np.array([0, 0, 2**17], np.int64), 10**6, dyn, fixed=True)
    # u: -3*2048 >> 12 -> -1 (toward zero), 3 -> 1; 2**17 << 6 = 2**23 stays (lava's wrap)
    assert u2.tolist() == [-1, 1, 2**23]
    assert v2.tolist() == [-2 - 1, 2 + 1, LOIHI_V_LIMIT]  # -2.5 -> -2, then + u; clipped
    assert not s.any()
    _, u3, _ = lif_step(v, None, np.array([2**17 + 1] * 3, np.int64), 10**6,
                        Dynamics(dv=0.5, reset="hard", fire=">"), fixed=True)
    assert u3 is None
    v4, _, s4 = lif_step(np.array([0], np.int64), None, np.array([7], np.int64), 6,
                         Dynamics(reset="hard", v_reset=2, fire=">"), fixed=True)
    assert s4[0] and v4[0] == 2 << ACTIVATION_SHIFT  # 7 << 6 > 6 << 6: reset to 2 << 6
    v0, _ = initial_state((2,), 3, Dynamics(dv=0.5, reset="hard"), True, np.int64)
    assert v0.tolist() == [3 << ACTIVATION_SHIFT] * 2


def test_neuron_step_dispatches_and_constant_current_counts():
    c = np.arange(-64, 300) / 128.0
    for T in (1, 3, 8):
        assert np.array_equal(constant_current_counts(c, T, 1.0, 0.5, Dynamics()),
                              rate_spike_count(c, T, 1.0, 0.5))
    dyn = Dynamics(dv=0.25, reset="hard")
    n = constant_current_counts(c, 6, 1.0, 0.0, dyn)
    v, u = np.zeros_like(c), None
    n_loop = np.zeros(c.shape, np.int64)
    for _ in range(6):
        v, u, s = neuron_step(v, u, c, 1.0, dyn)
        n_loop += s
    assert np.array_equal(n, n_loop) and n.max() > 0
    # the leak loses charge: never more spikes than without it
    assert np.all(n <= constant_current_counts(c, 6, 1.0, 0.0, Dynamics(reset="hard")))
    # a tie (v = θ exactly at some step) has margin 0; far from it, not
    m = count_margin(np.array([0.5, 0.3]), 2, 1.0, 0.0, Dynamics(dv=0.0, reset="hard"))
    assert m[0] == 0 and m[1] > 0.05


@pytest.mark.parametrize("fixed", [False, True], ids=["float", "fixed"])
def test_constant_current_train_is_the_stepped_train(fixed):
    """``constant_current_train`` (what a spike pool ORs): for leaky and hard-reset
    dynamics the spikes of ``neuron_step`` step by step (per-neuron T, integer units in
    fixed point), for integrate-and-fire the closed-form ``rate_spike_train``."""
    from pseudosnn.compiler.spiking.semantics import constant_current_train, rate_spike_train

    rng = np.random.default_rng(3)
    c = rng.integers(-40, 300, size=500) if fixed else np.arange(-64, 436) / 128.0
    theta, v0 = (256, 0) if fixed else (1.0, 0.0)
    Ti = rng.integers(1, 7, size=c.shape)
    for dyn in (Dynamics(dv=0.25, reset="hard"), Dynamics(du=0.5, dv=0.125, fire=">"),
                Dynamics(reset="hard", v_reset=-64 if fixed else -0.25)):
        v, u = initial_state(c.shape, v0, dyn, fixed, np.int64 if fixed else np.float64)
        loop = []
        for k in range(6):
            v, u, s = neuron_step(v, u, c, theta, dyn, active=k < Ti, fixed=fixed)
            loop.append(s)
        train = constant_current_train(c, Ti, theta, v0, dyn, fixed)
        np.testing.assert_array_equal(train, np.stack(loop), err_msg=str(dyn))
        assert train.any() and not train[Ti[None] <= np.arange(6)[:, None]].any()
        np.testing.assert_array_equal(train.sum(0),
                                      constant_current_counts(c, Ti, theta, v0, dyn, fixed))
    np.testing.assert_array_equal(constant_current_train(c, Ti, theta, v0 + 1, Dynamics()),
                                  rate_spike_train(c, Ti, theta, v0 + 1, 6))


@pytest.mark.parametrize("dyn,v0,message", [
    (Dynamics(dv=1.5), 0.0, "voltage decay dv=1.5 is outside"),
    (Dynamics(du=-0.1), 0.0, "current decay du=-0.1 is outside"),
    (Dynamics(reset="hard", v_reset=1.0), 0.0, "at or above the threshold"),
    (Dynamics(reset="hard", v_reset=1.0, fire=">"), 0.0, None),  # v > 1 is needed to fire
    (Dynamics(), 1.0, r"v0=1 must lie in \[0, threshold=1\)"),
    (Dynamics(fire=">"), 1.0, None),
])
def test_invalid_dynamics_say_what_is_wrong(dyn, v0, message):
    problem = dyn.problem(1.0, v0)
    if message is None:
        assert problem is None
    else:
        assert problem is not None and __import__("re").search(message, problem)
