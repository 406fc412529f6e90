"""quantize: int8 weights with e in [0, 7], integer θ/b/v0, scale per population; small,
reported error; clear errors for what cannot be represented."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.compiler.quantize import MIN_THETA_BITS, FixedPointError, quantize
from pseudosnn.compiler.spiking import reference
from pseudosnn.compiler.testing import random_graph


@pytest.mark.parametrize("kind", ["mlp", "cnn", "residual"])
def test_fixed_point_format_and_error(kind):
    g = random_graph(kind, seed=3, per_channel=kind != "mlp")
    fixed, rep = quantize(g)
    fixed.validate()
    assert fixed.fixed_point
    for p in fixed.populations:
        assert isinstance(p.threshold, int) and p.threshold >= 2 ** MIN_THETA_BITS
        assert p.v0 == p.threshold // 2
        assert np.issubdtype(np.asarray(p.bias).dtype, np.integer)
    for pr in fixed.projections:
        if not pr.is_encoder:
            assert pr.weight.dtype == np.int8 and pr.weight.min() >= -128  # narrowest exact
            assert pr.weight.max() <= 127 and 0 <= pr.weight_exp <= 7
            # the scale relation W_int·2^e ≈ W_eff·S_p
            s = fixed.node(pr.target).units_per_float
            w_eff = {q.name: q.weight for q in g.projections}[pr.name]
            assert np.abs(pr.weight * 2.0 ** pr.weight_exp - w_eff * s).max() <= \
                2.0 ** pr.weight_exp / 2 + 1e-9
    x = np.random.default_rng(0).normal(0, 1, (32, *g.input.shape))
    a, b = reference.evaluate(g, x), reference.evaluate(fixed, x)
    # 8-bit weights: the readout error of one layer is bounded by the weight quantum
    last = [p for p in fixed.projections if p.target == fixed.readout.name]
    counts_equal = all(np.array_equal(a.counts[p.source], b.counts[p.source]) for p in last)
    if counts_equal:
        bound = sum(np.abs(a.counts[p.source]).reshape(len(x), -1).sum(1).max()
                    * 2.0 ** p.weight_exp / 2 for p in last) / fixed.readout.units_per_float
        assert np.abs(a.output - b.output).max() <= bound + 1 / fixed.readout.units_per_float
    assert np.abs(a.output - b.output).max() < 0.7 * np.abs(a.output).max()
    assert rep.max_output_error is not None and rep.membrane_saturations == 0
    assert rep.count_mismatch_fraction < 0.1 and rep.agreement >= 0.5


def test_accuracy_reported_with_labels():
    g = random_graph("mlp", seed=1)
    x = np.random.default_rng(1).normal(0, 1, (20, 16))
    y = reference.evaluate(g, x).output.argmax(1)
    _, rep = quantize(g, x, y)
    assert rep.accuracy_float == 1.0 and 0.0 <= rep.accuracy_fixed <= 1.0


def test_overflowing_weights_are_refused():
    g = random_graph("mlp", seed=0)
    big = [replace(p, weight=p.weight * 1e9) if not p.is_encoder else p for p in g.projections]
    with pytest.raises(FixedPointError, match="overflow|too large"):
        quantize(replace(g, projections=tuple(big)))


def test_event_scale_is_refused():
    g = random_graph("cnn", seed=0)
    pr = next(p for p in g.projections if not p.is_encoder and p.kind == "conv")
    es = np.ones(g.shape_of(pr.source))
    g2 = replace(g, projections=tuple(replace(p, event_scale=es) if p is pr else p
                                      for p in g.projections))
    with pytest.raises(FixedPointError, match="per-event scale"):
        quantize(g2)


def test_leaky_populations_get_loihis_lif_arithmetic_and_a_report():
    """12-bit decays, an integer v_reset, Loihi's ``v > θ``, θ below 2**14 (the state is
    ``<< 6``); what changed is reported per population, and the artifact keeps it all."""
    import tempfile

    from pseudosnn.compiler import artifact
    from pseudosnn.compiler.quantize import MAX_LIF_THETA_BITS
    from pseudosnn.compiler.spiking.semantics import Dynamics
    from pseudosnn.compiler.testing import with_dynamics
    from pseudosnn.simulator.engine import simulate

    g = with_dynamics(random_graph("mlp", seed=2, stream=True),
                      Dynamics(dv=0.3, reset="hard", v_reset=-0.2), v0=0.0)
    fixed, rep = quantize(g)
    for p in fixed.populations:
        assert p.fire == ">" and p.dv == 1229 / 4096 and p.du == 1.0
        assert isinstance(p.threshold, int) and p.threshold < 2 ** MAX_LIF_THETA_BITS
        assert p.v_reset == round(-0.2 * p.units_per_float)
    assert rep.dynamics == [f"population {p!r}: dv 0.3 -> 0.300049 (1229/4096); fires on v > θ "
                            "(Loihi's comparator) instead of v >= θ" for p in ("fc0", "fc1")]
    with tempfile.TemporaryDirectory() as d:
        loaded = artifact.load(artifact.save(fixed, f"{d}/a"))
    assert [p.dynamics for p in loaded.populations] == [p.dynamics for p in fixed.populations]
    x = np.random.default_rng(0).normal(0, 1, (4, 16))
    assert np.array_equal(simulate(loaded, x).output, simulate(fixed, x).output)


def test_hard_reset_without_leak_keeps_its_comparison_exactly():
    """No decay: the state stays on the integer grid, so ``v >= θ`` is ``v > θ - 1`` —
    the quantiser changes the comparison without changing a spike, and says nothing."""
    from pseudosnn.compiler.spiking.semantics import Dynamics
    from pseudosnn.compiler.testing import with_dynamics
    from pseudosnn.simulator.engine import simulate

    g = with_dynamics(random_graph("residual", seed=1, stream=True), Dynamics(reset="hard"),
                      v0=0.0)
    fixed, rep = quantize(g)
    assert rep.dynamics == [] and all(p.fire == ">" for p in fixed.populations)
    same = fixed.with_populations(replace(p, fire=">=", threshold=p.threshold + 1)
                                  for p in fixed.populations)
    x = np.random.default_rng(3).normal(0, 1.5, (6, *g.input.shape))
    a, b = simulate(fixed, x, record_spikes=True), simulate(same, x, record_spikes=True)
    assert sum(int(s.sum()) for s in a.spikes.values()) > 0
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name])
