"""schedule: couplings (the paper's rule), windows, latency, throughput."""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.lower import lower
from pseudosnn.compiler.passes.schedule import schedule_graph


def _chain(rng, Ts, coupling="stream"):
    nodes, src = [], "input"
    for k, T in enumerate(Ts):
        nodes.append(ir.gemm(f"fc{k}", src, rng.normal(0, 0.5, (4, 4))))
        nodes.append(ir.neuron(f"n{k}", f"fc{k}", T, coupling=coupling))
        src = f"n{k}"
    nodes.append(ir.gemm("out", src, rng.normal(0, 1, (2, 4))))
    return ir.Graph((4,), tuple(nodes), "out")


def test_rate_windows_and_latency(rng):
    g = schedule_graph(lower(_chain(rng, [3, 5, 2], coupling="rate")))
    starts = [p.start for p in g.populations]
    assert starts == [0, 3, 8]  # encoder at 0; each waits for the previous window + 1 delay
    assert g.latency_steps == 8 + 2 - 1 + 1 + 1
    assert g.pipeline_interval == 5
    assert g.meta["latency_steps"] == g.latency_steps


def test_paper_rule_stream_when_T_matches(rng):
    g0 = lower(_chain(rng, [4, 4, 6]))
    g = schedule_graph(g0)
    coup = {p.name: p.coupling for p in g.populations}
    assert coup == {"n0": "rate", "n1": "stream", "n2": "rate"}  # encoder; same T; T differs
    assert not g.meta["warnings"]  # n2: the time mean of a 4-step train, the rule itself
    # granting stream undoes the 1/T_src fold
    w0 = {p.name: p.weight for p in g0.projections}
    w1 = {p.name: p.weight for p in g.projections}
    np.testing.assert_allclose(w1["fc1"], w0["fc1"] * 4)
    np.testing.assert_allclose(w1["fc2"], w0["fc2"])
    assert g.population("n1").start == g.population("n0").start + 1


def test_stream_residual_is_aligned_with_delays(rng):
    """Two stream sources of equal T that start at different steps: the earlier one's
    projection is delayed so that their trains line up."""
    nodes = (
        ir.gemm("e", "input", rng.normal(0, 1, (4, 3))),
        ir.neuron("a", "e", 4),
        ir.gemm("ab", "a", rng.normal(0, 1, (4, 4))),
        ir.neuron("b", "ab", 4, coupling="stream"),
        ir.gemm("bc", "b", rng.normal(0, 1, (4, 4))),
        ir.gemm("ac", "a", rng.normal(0, 1, (4, 4))),
        ir.Node("s", "Add", ("bc", "ac")),
        ir.neuron("c", "s", 4, coupling="stream"),
        ir.gemm("out", "c", rng.normal(0, 1, (2, 4))),
    )
    g = schedule_graph(lower(ir.Graph((3,), nodes, "out")))
    assert g.population("c").coupling == "stream"
    delays = {p.name: p.delay for p in g.projections}
    assert delays["bc"] == 1 and delays["ac"] == 2
    g.validate()


def _sum_of(rng, T_a, T_b, T_c, mode):
    """c reads a (T_a) and b (T_b, fed by a) through one residual sum."""
    nodes = (
        ir.gemm("e", "input", rng.normal(0, 1, (4, 3))),
        ir.neuron("a", "e", T_a),
        ir.gemm("ab", "a", rng.normal(0, 1, (4, 4))),
        ir.neuron("b", "ab", T_b, coupling="stream"),
        ir.gemm("bc", "b", rng.normal(0, 1, (4, 4))),
        ir.gemm("ac", "a", rng.normal(0, 1, (4, 4))),
        ir.gemm("ec", "input", rng.normal(0, 1, (4, 3))),
        ir.Node("s", "Add", ("bc", "ac", "ec")),
        ir.neuron("c", "s", T_c, coupling="stream"),
        ir.gemm("out", "c", rng.normal(0, 1, (2, 4))),
    )
    return schedule_graph(lower(ir.Graph((3,), nodes, "out", meta={"residual_mode": mode})))


def test_residual_mode_decides_the_encoder_term_and_unequal_trains(rng):
    """The paper's pad_and_add ("mirror") repeats a 1-step analog value through a stream
    window; time means ("mean") do not. Unequal trains are expressible only as means."""
    g = _sum_of(rng, 4, 4, 4, "mirror")
    assert g.population("c").coupling == "stream" and not g.meta["warnings"]
    assert g.population("c").start == g.population("b").start + 1  # the encoder waits
    g = _sum_of(rng, 4, 4, 4, "mean")
    assert g.population("c").coupling == "rate" and not g.meta["warnings"]
    g = _sum_of(rng, 4, 2, 4, "mirror")
    assert g.population("c").coupling == "rate"
    assert "mirror-padded" in g.meta["warnings"][0]
    assert not _sum_of(rng, 4, 2, 4, "mean").meta["warnings"]
