"""Helpers for the simulator tests: a small test-local quantiser (float graph -> fixed-point
graph per the graph contract) and an explicit, literal step loop over ``neuron_step``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.compiler.spiking.graph import WEIGHT_EXP_MAX, SpikingGraph
from pseudosnn.compiler.spiking.semantics import initial_state, neuron_step
from pseudosnn.compiler.spiking.synapses import encode_fixed, project

UNITS = 256  # integer membrane units per float unit (theta = 1.0 -> 256)


def quantise(graph: SpikingGraph) -> SpikingGraph:
    """int8 weights with a per-projection exponent, integer theta/v0/bias (DESIGN.md §2)."""
    pops = []
    for p in graph.populations:
        s = UNITS / p.threshold
        pops.append(replace(p, threshold=float(UNITS), v0=float(UNITS // 2), units_per_float=s,
                            bias=np.round(np.asarray(p.bias) * s).astype(np.int64)))
    scale = {p.name: p.units_per_float for p in pops}
    ro = replace(graph.readout, units_per_float=float(UNITS),
                 bias=np.round(np.asarray(graph.readout.bias) * UNITS).astype(np.int64))
    scale[ro.name] = ro.units_per_float
    projs = []
    for pr in graph.projections:
        if pr.is_encoder:
            projs.append(pr)
            continue
        w = np.asarray(pr.weight) * scale[pr.target]
        e = int(np.clip(np.ceil(np.log2(max(np.abs(w).max(), 1e-12) / 127)), 0, WEIGHT_EXP_MAX))
        w_int = np.clip(np.round(w / 2**e), -128, 127).astype(np.int64)
        projs.append(replace(pr, weight=w_int, weight_exp=e))
    g = replace(graph, populations=tuple(pops), readout=ro, projections=tuple(projs),
                fixed_point=True)
    g.validate()
    return g


def naive_loop(graph: SpikingGraph, x: np.ndarray):
    """The contract read literally: every step, every projection delivers the events its
    source emitted ``delay`` steps earlier (the encoder its current at step 0; a stream
    population gets the encoder current every step, direct encoding); rate populations and
    the readout add up what arrives, stream populations integrate what arrives now.
    Returns ``(spikes: pop -> bool (steps, B, *shape), readout (B, *shape))``."""
    fixed = graph.fixed_point
    dt = np.int64 if fixed else np.float64
    B, steps = x.shape[0], graph.latency_steps
    pops = list(graph.topological_populations())
    hist = {p.name: np.zeros((steps, B, *p.shape), dtype=bool) for p in pops}
    state = {p.name: initial_state((B, *p.shape), p.v0, p.dynamics, fixed, dt) for p in pops}
    acc = {p.name: np.zeros((B, *p.shape), dtype=dt) for p in pops}
    ro_acc = np.zeros((B, *graph.readout.shape), dtype=dt)

    def encoder(pr):
        c = project(pr, x)
        return encode_fixed(c, graph.node(pr.target).units_per_float) if fixed else c

    def arriving(name: str, t: int, stream: bool):
        total = 0
        for pr in graph.incoming(name):
            if pr.is_encoder:
                if t == 0 or stream:
                    total = total + encoder(pr)
            elif t - pr.delay >= 0:
                src = hist[pr.source][t - pr.delay].astype(dt)
                total = total + project(pr, src, fixed_point=fixed)
        return total

    for t in range(steps):
        for p in pops:
            T = p.timesteps_full()
            active = (t >= p.start) & (t < p.start + T)
            if p.coupling == "rate":
                acc[p.name] = acc[p.name] + arriving(p.name, t, False)
                current = acc[p.name] + p.bias
            else:
                current = arriving(p.name, t, bool(np.any(active))) + p.bias
            v, u = state[p.name]
            current = np.broadcast_to(current, v.shape).astype(dt)
            v, u, s = neuron_step(v, u, current, p.threshold, p.dynamics, active, fixed)
            state[p.name] = (v, u)
            hist[p.name][t] = s
        ro_acc = ro_acc + arriving(graph.readout.name, t, False)
    out = ro_acc + graph.readout.bias
    return hist, (out / graph.readout.units_per_float if fixed else out)


@pytest.fixture(autouse=True, scope="session")
def one_blas_thread():
    """One BLAS thread: the machine is shared, and oversubscribed BLAS threads made the
    large-model tests ~8x slower in wall time."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def quantised():
    return quantise


@pytest.fixture
def naive():
    return naive_loop
