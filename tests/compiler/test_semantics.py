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
