"""The schedule rule (compiler/spiking/schedule.py): rate windows open after the last
delivery, stream windows one delay after their sources start; the coupling pass and
``schedule`` use the one rule and agree."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.compiler.passes.schedule import assign_couplings
from pseudosnn.compiler.spiking.graph import GraphError
from pseudosnn.compiler.spiking.schedule import last_delivery, readout_step, schedule
from pseudosnn.compiler.testing import random_graph


@pytest.mark.parametrize("kind,stream", [("mlp", False), ("residual", False),
                                         ("mlp", True), ("residual", True)])
def test_windows_follow_the_rule(kind, stream):
    g = random_graph(kind, seed=1, stream=stream, per_channel=not stream)
    start = {p.name: p.start for p in g.populations}
    t_max = {p.name: p.t_max for p in g.populations}
    for p in g.populations:
        incoming = g.incoming(p.name)
        if p.coupling == "rate":
            assert p.start == max(last_delivery(pr, start, t_max) for pr in incoming)
        else:
            assert {start.get(pr.source, 0) + pr.delay for pr in incoming} == {p.start}
    assert g.latency_steps == readout_step(g) + 1


def test_coupling_pass_and_schedule_agree():
    for stream in (False, True):
        g = random_graph("residual", seed=3, stream=stream)
        unscheduled = g.with_populations(replace(p, start=0) for p in g.populations)
        by_pass = assign_couplings(unscheduled)
        again = schedule(by_pass)
        assert [p.start for p in again.populations] == [p.start for p in g.populations]


def test_stream_sources_that_start_apart_are_refused():
    g = random_graph("residual", seed=0, stream=True)
    skip = [pr for pr in g.projections if pr.delay == 2]
    assert skip  # the identity shortcut is delayed to line the trains up
    broken = replace(g, projections=tuple(replace(pr, delay=1) if pr.delay == 2 else pr
                                          for pr in g.projections))
    with pytest.raises(GraphError, match="start at different steps"):
        schedule(broken)


def test_graph_arrays_are_read_only():
    g = random_graph("cnn", seed=0)
    for arr in (g.populations[0].timesteps, g.populations[0].bias, g.projections[0].weight,
                g.readout.bias):
        assert not np.asarray(arr).flags.writeable
        with pytest.raises(ValueError):
            np.asarray(arr).reshape(-1)[0] = 1
