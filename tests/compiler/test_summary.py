"""summary: per-layer rows; the SOP upper bound is Σ fan-out·T (fan-out counted by brute
force over the synapses)."""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.synapses import project
from pseudosnn.compiler.summary import format_summary, layer_rows
from pseudosnn.compiler.testing import random_graph


def _brute_fanout(graph, pr):
    shape = graph.shape_of(pr.source)
    n = int(np.prod(shape))
    basis = np.eye(n).reshape(n, *shape)
    from dataclasses import replace

    ones = replace(pr, weight=np.ones_like(pr.weight, dtype=np.float64), event_scale=None)
    return (project(ones, basis) != 0).reshape(n, -1).sum(1).reshape(shape)


def test_sops_upper_bound_is_fanout_times_T():
    g = random_graph("residual", seed=2, per_channel=True)
    rows = {r["layer"]: r for r in layer_rows(g)}
    for p in g.populations:
        fan = sum(_brute_fanout(g, pr) for pr in g.outgoing(p.name))
        assert rows[p.name]["sops_max"] == int(np.sum(fan * p.timesteps_full()))
    text = format_summary(g)
    assert "sops_max" in text and "latency:" in text and str(g.latency_steps) in text
    # encoder MACs are the structural synapses (padding taps are not): brute force again
    enc = [pr for pr in g.projections if pr.is_encoder]
    assert counting.encoder_macs(g) == sum(int(_brute_fanout(g, pr).sum()) for pr in enc)
    assert counting.encoder_macs(g) < 4 * 2 * 9 * 64  # the padded count the summary once printed
    assert f"encoder MACs: {counting.encoder_macs(g):,}" in text
