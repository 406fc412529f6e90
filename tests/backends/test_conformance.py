"""Conformance: every registered backend runs the same random graphs and returns what the
simulator returns, field for field: spike counts, SOPs per projection, encoder MACs,
neuron updates, steps and readouts.

The graphs cover rate and stream coupling, residual sums, T per channel, synaptic delays
beyond one step, spike max pooling, an analog max-pool stem, event frames streamed one per
step, leaky and hard-reset neurons (on Lava's own LIF process where it computes them
exactly, on ours otherwise) and the two together (pools of leaky trains, frames into leaky
populations), a leaky readout (alone, after a spike pool, fed by event frames, behind an
analog stem), float and fixed point; a backend runs those whose features it declares
(``compiler.spiking.backend.required_features``) and must refuse the others by name.
Float graphs are put on a dyadic grid (weights and biases multiples of 2^-7, inputs of
2^-3), so every sum is exact in float32 and float64 alike and any order of summation
gives the same bits: equality can be demanded of onnxruntime (float32) and Lava too.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.backends.lava.lif_map import lava_lif_refusal
from pseudosnn.backends.registry import BACKENDS, get_backend
from pseudosnn.compiler.quantize import quantize
from pseudosnn.compiler.spiking.backend import (
    UnsupportedFeature,
    check_supported,
    required_features,
)
from pseudosnn.compiler.spiking.result import RunResult
from pseudosnn.compiler.spiking.schedule import schedule
from pseudosnn.compiler.spiking.semantics import Dynamics
from pseudosnn.compiler.testing import random_graph, with_dynamics

GRID = 2.0 ** -7


def dyadic(graph):
    """``graph`` with weights and biases (the analog stem's too) rounded to multiples of
    :data:`GRID`."""
    def grid(a):
        return np.round(np.asarray(a) / GRID) * GRID

    pops = [replace(p, bias=grid(p.bias)) for p in graph.populations]
    projs = [replace(pr, weight=grid(pr.weight)) for pr in graph.projections]
    ro = replace(graph.readout, bias=grid(graph.readout.bias))
    stem = graph.input.stem
    node = graph.input if stem is None else replace(
        graph.input, stem=replace(stem, weight=grid(stem.weight), bias=grid(stem.bias)))
    return replace(graph, input=node, populations=tuple(pops), projections=tuple(projs),
                   readout=ro)


def with_delay(graph, name: str, delay: int):
    """``graph`` with projection ``name`` delivering ``delay`` steps late, rescheduled."""
    projs = [replace(pr, delay=delay) if pr.name == name else pr for pr in graph.projections]
    return schedule(replace(graph, projections=tuple(projs)))


def with_event_scale(graph):
    """``graph`` ("cnn") with one T per neuron in ``conv1``, its events into ``conv2``
    scaled per source neuron (what per-neuron T into a conv compiles to)."""
    rng = np.random.default_rng(7)
    pops = [replace(p, timesteps=rng.integers(1, 9, size=p.shape)) if p.name == "conv1" else p
            for p in graph.populations]
    scale = rng.integers(1, 5, size=graph.shape_of("conv1")) / 4
    projs = [replace(pr, event_scale=scale) if pr.name == "conv1->conv2" else pr
             for pr in graph.projections]
    return schedule(replace(graph, populations=tuple(pops), projections=tuple(projs)))


def _float_graphs() -> dict:
    return {
        "mlp-rate": random_graph("mlp", seed=0),
        "cnn-rate-per-channel-T": random_graph("cnn", seed=1, per_channel=True),
        "residual-rate": random_graph("residual", seed=2),
        "residual-rate-delay-3": with_delay(random_graph("residual", seed=3),
                                            "conv2->conv4", 3),
        "mlp-stream": random_graph("mlp", seed=4, stream=True),
        "residual-stream-delay-2-skip": random_graph("residual", seed=5, stream=True),
        "cnn-rate-spike-pool-per-channel-T": random_graph("cnn", seed=8, pool=True,
                                                          per_channel=True),
        "cnn-stream-spike-pool": random_graph("cnn", seed=9, pool=True, stream=True),
        "cnn-rate-analog-stem": random_graph("cnn", seed=10, stem=True),
        "cnn-stream-event-frames": random_graph("cnn", seed=11, frames=4, stream=True),
        "cnn-rate-event-frames-mean": random_graph("cnn", seed=12, frames=3),
        # Lava's own LIF: hard reset to 0, v0 = 0, no current state
        "mlp-stream-lif-hard-reset": with_dynamics(
            random_graph("mlp", seed=8, stream=True), Dynamics(dv=0.25, reset="hard"), v0=0.0),
        "residual-stream-if-hard-reset": with_dynamics(
            random_graph("residual", seed=9, stream=True), Dynamics(reset="hard"), v0=0.0),
        # our own process: leak with soft reset and heterogeneous T; a current with state,
        # a reset below 0 and firing on v > θ
        "cnn-rate-per-channel-T-leak-soft-reset": with_dynamics(
            random_graph("cnn", seed=10, per_channel=True), Dynamics(dv=0.125)),
        "mlp-stream-current-decay-reset-below-0": with_dynamics(
            random_graph("mlp", seed=11, stream=True),
            Dynamics(du=0.5, dv=0.125, reset="hard", v_reset=-0.25, fire=">"), v0=0.25),
        # both together: spike pools of Lava's LIF and of our leaky process (a rate source
        # stepped, not closed form), event frames into either, an analog stem before a leak
        "cnn-stream-spike-pool-lif-hard-reset": with_dynamics(
            random_graph("cnn", seed=13, pool=True, stream=True),
            Dynamics(dv=0.25, reset="hard"), v0=0.0),
        "cnn-rate-spike-pool-per-channel-T-current-decay": with_dynamics(
            random_graph("cnn", seed=14, pool=True, per_channel=True),
            Dynamics(du=0.5, dv=0.125)),
        "cnn-stream-event-frames-lif-hard-reset": with_dynamics(
            random_graph("cnn", seed=15, frames=4, stream=True),
            Dynamics(dv=0.25, reset="hard"), v0=0.0),
        "cnn-stream-event-frames-spike-pool-current-decay-reset-below-0": with_dynamics(
            random_graph("cnn", seed=16, frames=4, stream=True, pool=True),
            Dynamics(du=0.5, dv=0.125, reset="hard", v_reset=-0.25, fire=">"), v0=0.25),
        "cnn-rate-analog-stem-leak": with_dynamics(
            random_graph("cnn", seed=17, stem=True), Dynamics(dv=0.125)),
    }


GRAPHS = {name: dyadic(g) for name, g in _float_graphs().items()}
GRAPHS |= {f"{name}-fixed": quantize(g)[0] for name, g in _float_graphs().items()}
GRAPHS["cnn-rate-per-neuron-T-event-scale"] = dyadic(with_event_scale(random_graph("cnn", 6)))


def with_leaky_readout(graph, decay: float = 0.25):
    """``graph`` with a leaky readout (an imported NIR LI node; float only)."""
    return replace(graph, readout=replace(graph.readout, decay=decay))


GRAPHS |= {f"{name}-leaky-readout": dyadic(with_leaky_readout(g)) for name, g in {
    "mlp-stream": random_graph("mlp", seed=12, stream=True),
    "cnn-stream-spike-pool": random_graph("cnn", seed=18, pool=True, stream=True),
    "cnn-stream-event-frames": random_graph("cnn", seed=19, frames=4, stream=True),
    "cnn-rate-analog-stem": random_graph("cnn", seed=20, stem=True),
}.items()}


def inputs(graph, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, 1, size=(3, *graph.input.sample_shape))
    return np.clip(np.round(x * 8) / 8, -2, 2)


def assert_same_run(got: RunResult, want: RunResult, what: str) -> None:
    """Every field of a run, exactly (the dyadic grid makes float arithmetic exact)."""
    for pop, n in want.counts.items():
        np.testing.assert_array_equal(got.counts[pop], n, err_msg=f"{what}: counts of {pop}")
    assert got.sops == want.sops, f"{what}: SOPs"
    assert got.macs == want.macs, f"{what}: encoder MACs"
    assert got.neuron_updates == want.neuron_updates, f"{what}: neuron updates"
    assert got.leak_multiplies == want.leak_multiplies, f"{what}: leak multiplies"
    assert got.compares == want.compares, f"{what}: compares"
    assert got.steps == want.steps, f"{what}: steps"
    np.testing.assert_array_equal(got.output, want.output, err_msg=f"{what}: readouts")


def _backend(name: str, request):
    if name == "lava":
        request.getfixturevalue("lava_python")  # skip, or fail under CI, without Lava
        return get_backend("lava", timeout=300)
    return get_backend(name)


@pytest.fixture(scope="module")
def reference_runs() -> dict[str, RunResult]:
    sim = get_backend("numpy")
    return {name: sim.run(g, inputs(g, i)) for i, (name, g) in enumerate(GRAPHS.items())}


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_matches_the_simulator(name, request, reference_runs):
    backend = _backend(name, request)
    supported = {g: graph for g, graph in GRAPHS.items()
                 if required_features(graph) <= backend.capabilities}
    assert supported, f"{name} runs none of the conformance graphs"
    for g in set(GRAPHS) - set(supported):
        with pytest.raises(UnsupportedFeature, match=f"the {name} target does not support"):
            check_supported(backend, GRAPHS[g])
    if name == "lava":  # one Lava process per mode (start-up is seconds)
        runs = {}
        for fixed in (False, True):
            names = [g for g in supported if GRAPHS[g].fixed_point == fixed]
            pairs = [(GRAPHS[g], inputs(GRAPHS[g], list(GRAPHS).index(g))) for g in names]
            runs |= dict(zip(names, backend.run_many(pairs), strict=True))
    else:
        runs = {g: backend.run(graph, inputs(graph, list(GRAPHS).index(g)))
                for g, graph in supported.items()}
    for g, run in runs.items():
        assert_same_run(run, reference_runs[g], f"{name} on {g}")
        if name == "lava":  # the populations that Lava's own LIF computes ran on it
            graph = GRAPHS[g]
            on_lif = [p.name for p in graph.populations if lava_lif_refusal(graph, p) is None]
            assert run.extra["lava_lif"] == on_lif, g
            assert bool(on_lif) == ("hard-reset" in g), g


def test_the_comparison_catches_a_backend_that_counts_differently(reference_runs):
    """The check above can fail: one SOP more, one MAC less or one update more is caught."""
    want = reference_runs["residual-rate"]
    proj = next(iter(want.sops))
    for changed in (replace(want, sops={**want.sops, proj: want.sops[proj] + 1}),
                    replace(want, macs=want.macs - 1),
                    replace(want, neuron_updates={k: v + 1 for k, v in
                                                  want.neuron_updates.items()})):
        with pytest.raises(AssertionError):
            assert_same_run(changed, want, "tampered")


def test_every_backend_supports_what_it_claims_on_some_graph():
    """No capability is declared without a conformance graph that exercises it."""
    exercised = set().union(*(required_features(g) for g in GRAPHS.values()))
    for name in BACKENDS:
        claimed = get_backend(name).capabilities - {"record_spikes"}
        assert claimed <= exercised, f"{name} claims {claimed - exercised} untested"
