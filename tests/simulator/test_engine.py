"""The engine against the contract: the closed-form reference (rate coupling), a literal
step loop over ``neuron_step`` (stream coupling, and rate in fixed point; leaky and
hard-reset populations), float and fixed."""

import numpy as np
import pytest
from pseudosnn.backends.numpy_backend import NumpyBackend
from pseudosnn.compiler.quantize import quantize
from pseudosnn.compiler.spiking.graph import Projection
from pseudosnn.compiler.spiking.reference import evaluate
from pseudosnn.compiler.spiking.semantics import Dynamics
from pseudosnn.compiler.spiking.synapses import conv2d, project
from pseudosnn.compiler.testing import random_graph, with_dynamics
from pseudosnn.simulator.engine import SimulationError, simulate
from pseudosnn.simulator.kernels import Kernels

KINDS = ["mlp", "cnn", "residual"]


def batch(graph, n=6, seed=0):
    return np.random.default_rng(seed).normal(0, 1.2, size=(n, *graph.input.shape))


def assert_counts_consistent(res):
    for name, s in res.spikes.items():
        assert s.dtype == bool and s.shape[1] == res.steps
        assert np.array_equal(s.sum(axis=1), res.counts[name])
        assert np.array_equal(s.sum(axis=tuple(i for i in range(s.ndim) if i != 1)),
                              res.spikes_per_step[name])


def assert_pool_ors_its_source(res, pool) -> None:
    """The pool's recorded train is the OR over each window of its source's train
    ``POOL_DELAY`` steps earlier, and it has spikes and silences."""
    from pseudosnn.compiler.spiking.schedule import POOL_DELAY
    from pseudosnn.compiler.spiking.synapses import spike_pool

    src = res.spikes[pool.source]
    want = np.zeros_like(res.spikes[pool.name])
    for t in range(res.steps - POOL_DELAY):
        want[:, t + POOL_DELAY] = spike_pool(pool, src[:, t])
    np.testing.assert_array_equal(res.spikes[pool.name], want)
    assert want.any() and not want.all()


def assert_equals_naive_loop(res, naive_run, fixed: bool) -> None:
    """Every spike of the simulator's run equals the literal loop's, the readouts too
    (exactly in fixed point), and something fired."""
    spikes, out = naive_run
    fired = 0
    for name, s in spikes.items():
        np.testing.assert_array_equal(res.spikes[name], np.moveaxis(s, 0, 1), err_msg=name)
        fired += int(s.sum())
    assert fired > 0
    if fixed:
        np.testing.assert_array_equal(res.output, out)
    else:
        np.testing.assert_allclose(res.output, out, rtol=1e-12, atol=1e-12)
    assert_counts_consistent(res)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_rate_counts_equal_reference_float(kind, per_channel):
    for seed in range(4):
        g = random_graph(kind, seed=seed, per_channel=per_channel)
        x = batch(g, seed=seed)
        res = simulate(g, x, record_spikes=True)
        ref = evaluate(g, x)
        total = 0
        for name, n in ref.counts.items():
            assert np.array_equal(res.counts[name], n), (seed, name)
            total += int(n.sum())
        assert total > 0
        np.testing.assert_array_equal(res.output, ref.output)
        assert res.steps == g.latency_steps
        assert_counts_consistent(res)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_rate_counts_equal_reference_fixed_point(kind, per_channel, quantised):
    for seed in range(3):
        g = quantised(random_graph(kind, seed=seed, per_channel=per_channel))
        x = batch(g, seed=seed)
        res = simulate(g, x, fixed_point=True)
        ref = evaluate(g, x)
        for name, n in ref.counts.items():
            assert np.array_equal(res.counts[name], n), (seed, name)
        assert sum(int(n.sum()) for n in ref.counts.values()) > 0
        np.testing.assert_array_equal(res.output, ref.output)


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_stream_step_for_step_equals_naive_loop(kind, fixed, naive, quantised):
    for seed in range(3):
        g = random_graph(kind, seed=seed, stream=True)
        assert any(p.coupling == "stream" for p in g.populations)
        if fixed:
            g = quantised(g)
        x = batch(g, seed=seed)
        assert_equals_naive_loop(simulate(g, x, record_spikes=True), naive(g, x), fixed)


@pytest.mark.parametrize("kind", KINDS)
def test_rate_per_step_delivery_equals_window_sum(kind, naive, quantised):
    """The one-projection-per-window shortcut changes nothing observable: spike trains
    equal the literal per-step loop (fixed point: exact; float: same spikes)."""
    for g in (random_graph(kind, seed=5, per_channel=True),
              quantised(random_graph(kind, seed=5, per_channel=True))):
        x = batch(g, seed=1)
        res = simulate(g, x, record_spikes=True)
        spikes, out = naive(g, x)
        for name, s in spikes.items():
            np.testing.assert_array_equal(res.spikes[name], np.moveaxis(s, 0, 1), err_msg=name)
        np.testing.assert_allclose(res.output, out, rtol=1e-12, atol=1e-12)


def test_sops_are_events_times_fanout(quantised):
    g = random_graph("residual", seed=2, per_channel=True)
    x = batch(g, 5)
    res = simulate(g, x)
    for pr in g.projections:
        if pr.is_encoder:
            continue
        src = g.population(pr.source)
        # brute force: every event reaches the targets of a one-hot projection
        ones = Projection("o", pr.source, pr.target, pr.kind, np.ones_like(pr.weight),
                          pr.stride, pr.padding, pr.groups)
        per_event = np.zeros(src.shape, dtype=np.int64)
        for idx in np.ndindex(*src.shape):
            e = np.zeros((1, *src.shape))
            e[(0, *idx)] = 1
            per_event[idx] = int((project(ones, e) != 0).sum())
        assert res.sops[pr.name] == int((res.counts[pr.source].sum(0) * per_event).sum())
    enc = [pr for pr in g.projections if pr.is_encoder][0]
    ones = Projection("o", "input", enc.target, "conv", np.ones_like(enc.weight),
                      enc.stride, enc.padding, enc.groups, delay=0)
    taps = sum(int((project(ones, e[None]) != 0).sum())
               for e in np.eye(int(np.prod(g.input.shape))).reshape(-1, *g.input.shape))
    assert res.macs == 5 * taps  # structural synapses: padding taps are not counted


# MatMulInteger (<= 127), float32, float64 and int64 paths
@pytest.mark.parametrize("x_max", [15, 200, 2**14, 2**40])
def test_fixed_point_gemm_in_float_is_exact(x_max):
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(6, 4, 3, 3))
    pr = Projection("p", "a", "b", "conv", w, padding=(1, 1), weight_exp=3)
    counts = rng.integers(0, x_max + 1, size=(3, 4, 7, 7))
    exact = project(pr, counts, fixed_point=True)
    assert exact.dtype == np.int64
    got = Kernels("fixed")(pr, counts, x_max)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, exact)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_precision_agrees_with_float64(kind):
    g = random_graph(kind, seed=0, per_channel=True)
    x = batch(g, 16)
    r64, r32 = simulate(g, x), simulate(g, x, precision="float32")
    total = sum(int(n.size) for n in r64.counts.values())
    differ = sum(int((r64.counts[k] != r32.counts[k]).sum()) for k in r64.counts)
    assert differ <= total * 1e-3  # float32 rounding may move a near-tie, rarely
    np.testing.assert_allclose(r32.output, r64.output, atol=1e-3)
    with pytest.raises(SimulationError, match="precision"):
        simulate(g, x, precision="float16")


def test_backend_protocol():
    g = random_graph("cnn", seed=0)
    b = NumpyBackend()
    assert b.name == "numpy" and "fixed_point" in b.capabilities
    assert b.emit(g, None) == {}
    x = batch(g, 2)
    r1, r2 = b.run(g, x, record_spikes=True), simulate(g, x)
    for k in r2.counts:
        assert np.array_equal(r1.counts[k], r2.counts[k])
    assert r1.sops == r2.sops and r1.macs == r2.macs and r1.spikes is not None


def test_bad_input_shape_and_mode(quantised):
    g = random_graph("cnn", seed=0)
    with pytest.raises(SimulationError, match=r"expects \(B, 2, 8, 8\)"):
        simulate(g, np.zeros((3, 8, 8)))
    with pytest.raises(SimulationError, match="empty"):
        simulate(g, np.zeros((0, 2, 8, 8)))
    with pytest.raises(SimulationError, match="NaN"):
        simulate(g, np.full((1, 2, 8, 8), np.nan))
    with pytest.raises(SimulationError, match="float"):
        simulate(g, np.zeros((1, 2, 8, 8)), fixed_point=True)
    with pytest.raises(SimulationError, match="fixed-point"):
        simulate(quantised(g), np.zeros((1, 2, 8, 8)), fixed_point=False)


def with_block_conv(graph, seed=0):
    """``graph`` ("cnn"/"residual") with conv1->conv2 replaced by what the compiler makes of
    avgpool(2) + conv3x3: a 6x6 stride-2 kernel constant on 2x2 blocks, padding 2."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    projs = []
    for pr in graph.projections:
        if pr.name == "conv1->conv2":
            k = rng.normal(0, 0.6, size=pr.weight.shape[:2] + (3, 3))
            w = np.repeat(np.repeat(k, 2, axis=2), 2, axis=3) / 4
            pr = replace(pr, weight=w, stride=(2, 2), padding=(2, 2))
        projs.append(pr)
    g = replace(graph, projections=tuple(projs))
    g.validate()
    return g


@pytest.mark.parametrize("kind", ["cnn", "residual"])
def test_block_conv_graph_equals_reference_and_naive_loop(kind, naive, quantised):
    """The factorised avgpool+conv projection: float64 counts/readout bit-identical to the
    reference, spike trains equal the literal loop; fixed point exact; float32 agrees."""
    from pseudosnn.compiler.spiking.synapses import block_kernel

    for seed in range(2):
        g = with_block_conv(random_graph(kind, seed=seed, per_channel=True), seed)
        pr = next(p for p in g.projections if p.name == "conv1->conv2")
        assert block_kernel(pr.weight, pr.stride) is not None
        x = batch(g, 8, seed=seed)
        ref = evaluate(g, x)
        res = simulate(g, x)
        assert sum(int(n.sum()) for n in ref.counts.values()) > 0
        for name, n in ref.counts.items():
            assert np.array_equal(res.counts[name], n), (seed, name)
        np.testing.assert_array_equal(res.output, ref.output)
        spikes, out = naive(g, x)
        rec = simulate(g, x, record_spikes=True)
        for name, s in spikes.items():
            np.testing.assert_array_equal(rec.spikes[name], np.moveaxis(s, 0, 1), err_msg=name)
        gq = quantised(g)
        resq, refq = simulate(gq, x), evaluate(gq, x)
        for name, n in refq.counts.items():
            assert np.array_equal(resq.counts[name], n), (seed, name)
        np.testing.assert_array_equal(resq.output, refq.output)
        r32 = simulate(g, x, precision="float32")
        total = sum(int(n.size) for n in res.counts.values())
        assert sum(int((r32.counts[k] != res.counts[k]).sum()) for k in res.counts) <= total * 1e-2
        np.testing.assert_allclose(r32.output, res.output, atol=1e-3)


@pytest.mark.parametrize("x_max", [15, 200, 2**14, 2**40])
def test_fixed_point_block_conv_projector_is_exact(x_max):
    rng = np.random.default_rng(3)
    k = rng.integers(-128, 128, size=(6, 4, 3, 3))
    w = np.repeat(np.repeat(k, 2, axis=2), 2, axis=3)
    pr = Projection("p", "a", "b", "conv", w, stride=(2, 2), padding=(2, 2), weight_exp=3)
    counts = rng.integers(0, x_max + 1, size=(3, 4, 9, 7))
    direct = conv2d(counts, w, (2, 2), (2, 2)) << 3
    got = Kernels("fixed")(pr, counts, x_max)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, direct)
    np.testing.assert_array_equal(project(pr, counts, fixed_point=True), direct)


@pytest.mark.parametrize("mode", ["float64", "float32", "fixed"])
@pytest.mark.parametrize("kind", KINDS)
def test_spikes_per_step_without_the_train_equal_the_recorded_train(kind, mode, quantised,
                                                                    monkeypatch):
    """Without recorded spikes a rate window's spikes per step count only the neurons with
    ``0 < c < theta`` step by step (``c <= 0`` never fires, ``c >= theta`` fires every
    step); with them the whole train is built. Counts, spikes per step and the readout must
    not differ, for uniform and per-channel T, and all three kinds of neuron must occur."""
    from pseudosnn.simulator import closed_form

    kinds = []
    per_step = closed_form.Window.per_step

    def spy(self):
        c = self.c
        kinds.append((int((c <= 0).sum()), int((c >= self.theta).sum())))
        return per_step(self)

    monkeypatch.setattr(closed_form.Window, "per_step", spy)
    precision = "float64" if mode == "fixed" else mode
    for seed, per_channel in ((0, False), (1, True), (2, True)):
        g = random_graph(kind, seed=seed, per_channel=per_channel)
        if mode == "fixed":
            g = quantised(g)
        x = batch(g, 7, seed=seed)
        kinds.clear()
        fast = simulate(g, x, precision=precision)
        assert len(kinds) == len(g.populations)  # every window without its train
        full = simulate(g, x, record_spikes=True, precision=precision)
        assert len(kinds) == len(g.populations)  # ... and none with spikes recorded
        for name in full.counts:
            np.testing.assert_array_equal(fast.counts[name], full.counts[name], err_msg=name)
            np.testing.assert_array_equal(fast.spikes_per_step[name],
                                          full.spikes_per_step[name], err_msg=name)
        assert sum(a for a, _ in kinds) > 0 and sum(b for _, b in kinds) > 0
        np.testing.assert_array_equal(fast.output, full.output)


LEAKY = {  # (graph kind, stream, dynamics, v0)
    "lif-hard-stream": ("mlp", True, Dynamics(dv=0.25, reset="hard"), 0.0),
    "if-hard-stream": ("residual", True, Dynamics(reset="hard", v_reset=-0.3), 0.0),
    "lif-soft-rate": ("cnn", False, Dynamics(dv=0.2), None),
    "cuba-rate": ("residual", False, Dynamics(du=0.4, dv=0.1, reset="hard", fire=">"), 0.1),
}


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("case", sorted(LEAKY))
def test_leaky_and_hard_reset_graphs_equal_the_naive_loop(case, fixed, naive):
    """Leaky/hard-reset populations: every spike equals the literal loop over
    ``neuron_step`` (the whole-window shortcut steps ``lif_step`` itself, no live-neuron
    skipping); rate graphs also equal the reference (stepped counts); fixed point (Loihi's
    arithmetic) exactly."""
    kind, stream, dyn, v0 = LEAKY[case]
    g = with_dynamics(random_graph(kind, seed=4, stream=stream, per_channel=not stream), dyn,
                      v0)
    if fixed:
        g = quantize(g)[0]
    x = batch(g, seed=2)
    res = simulate(g, x, record_spikes=True)
    assert_equals_naive_loop(res, naive(g, x), fixed)
    if not stream:
        ref = evaluate(g, x)
        for name, n in ref.counts.items():
            np.testing.assert_array_equal(res.counts[name], n, err_msg=name)
    leak = {p.name: p.dynamics.decays * p.size * g.latency_steps * len(x)
            for p in g.populations}
    assert res.leak_multiplies == leak and (sum(leak.values()) > 0) == (dyn.decays > 0)
    if not fixed:  # float32 precision steps lif_step too
        r32 = simulate(g, x, precision="float32")
        agree = np.mean([np.mean(r32.counts[k] == res.counts[k]) for k in res.counts])
        assert agree > 0.99


@pytest.mark.parametrize("kind,stream", [("mlp", True), ("residual", True), ("cnn", False)])
def test_leaky_readout_decays_every_step(kind, stream):
    """A leaky readout (an imported NIR LI node) equals ``acc <- acc·(1 − decay) +
    delivered(t)`` stepped over the recorded spikes, plus its bias once; its sources are
    stepped (never whole-window) and it multiplies once per neuron and step."""
    from dataclasses import replace

    g = random_graph(kind, seed=3, stream=stream)
    g = replace(g, readout=replace(g.readout, decay=0.3))
    x = batch(g, seed=1)
    res = simulate(g, x, record_spikes=True)
    acc = 0.0
    for t in range(g.latency_steps):
        delivered = sum(project(pr, res.spikes[pr.source][:, t - pr.delay].astype(float))
                        for pr in g.incoming(g.readout.name) if t >= pr.delay)
        acc = acc * (1 - 0.3) + delivered
    np.testing.assert_allclose(res.output, acc + g.readout.bias, rtol=1e-12, atol=1e-12)
    if max(g.population(pr.source).t_max for pr in g.incoming(g.readout.name)) > 1:
        assert not np.allclose(res.output, simulate(replace(g, readout=replace(
            g.readout, decay=0.0)), x).output)
    assert res.leak_multiplies[g.readout.name] == len(x) * 5 * g.latency_steps


@pytest.mark.parametrize("fixed", [False, True], ids=["float", "fixed"])
@pytest.mark.parametrize("stream", [False, True], ids=["rate", "stream"])
def test_spike_pool_ors_the_stepped_train_of_a_leaky_source(stream, fixed):
    """Spike pools and leak together: a pool fed by a leaky, hard-reset population emits at
    ``t + POOL_DELAY`` the OR over each window of the source's real (stepped) train; in a
    rate graph every count equals the reference (``constant_current_train``), and that
    train is not the integrate-and-fire closed form."""
    from pseudosnn.compiler.spiking.semantics import rate_spike_count

    dyn = Dynamics(du=0.5, dv=0.25, reset="hard", v_reset=-0.25, fire=">")
    g = with_dynamics(random_graph("cnn", seed=6, pool=True, stream=stream), dyn, v0=0.0)
    if fixed:
        g = quantize(g)[0]
    x = batch(g, seed=3)
    res = simulate(g, x, record_spikes=True)
    assert_counts_consistent(res)
    (pool,) = g.pools
    assert_pool_ors_its_source(res, pool)
    if not stream:
        ref = evaluate(g, x)
        for name, n in ref.counts.items():
            np.testing.assert_array_equal(res.counts[name], n, err_msg=name)
        p = g.population(pool.source)
        closed = rate_spike_count(ref.currents[p.name], p.timesteps, p.threshold, p.v0)
        assert not np.array_equal(closed, res.counts[p.name])


@pytest.mark.parametrize("fixed", [False, True], ids=["float", "fixed"])
def test_event_frames_stream_into_a_leaky_population_one_per_step(fixed):
    """Event frames and leak together: a leaky stream population integrates frame ``k`` at
    window step ``k`` (``neuron_step`` on each frame's current), not their time mean."""
    from pseudosnn.compiler.spiking.semantics import initial_state, neuron_step
    from pseudosnn.compiler.spiking.synapses import encoder_currents

    g = with_dynamics(random_graph("cnn", seed=7, frames=4, stream=True),
                      Dynamics(du=0.5, dv=0.25), v0=0.0)
    if fixed:
        g = quantize(g)[0]
    x = np.random.default_rng(4).normal(0.3, 1.5, size=(3, *g.input.sample_shape))
    res = simulate(g, x, record_spikes=True)
    p = g.population("conv1")
    frames = encoder_currents(g, x)["conv1"]  # (B, F, C, H, W)
    assert frames.shape[1] == g.input.frames == p.t_max

    def train(currents):
        theta = int(p.threshold) if fixed else p.threshold
        v, u = initial_state(currents[0].shape, p.v0, p.dynamics, fixed,
                             np.int64 if fixed else np.float64)
        out = []
        for c in currents:
            v, u, s = neuron_step(v, u, c + p.bias, theta, p.dynamics, fixed=fixed)
            out.append(s)
        return np.stack(out, axis=1)

    framed = train(np.moveaxis(frames, 1, 0))
    np.testing.assert_array_equal(res.spikes[p.name][:, p.start:p.end], framed)
    assert framed.any()
    mean = frames.mean(axis=1)
    assert not np.array_equal(framed, train([mean.astype(frames.dtype)] * g.input.frames))


@pytest.mark.parametrize("fixed", [False, True], ids=["float", "fixed"])
@pytest.mark.parametrize("case", ["rate", "rate-per-channel", "stream"])
def test_spike_pool_of_a_closed_form_population_pools_its_whole_train(case, fixed,
                                                                      monkeypatch):
    """An integrate-and-fire source computed in closed form is pooled train-at-once: the
    pool's train is the OR of the source's train ``POOL_DELAY`` steps later, recorded or
    not the counts are the same, a rate graph's counts and readout are the reference's,
    and in fixed point every spike is that of the engine stepping every population."""
    from dataclasses import replace

    from pseudosnn.simulator import closed_form
    from pseudosnn.simulator.engine import plan_of

    g = random_graph("cnn", seed=21, pool=True, stream=case == "stream",
                     per_channel=case == "rate-per-channel")
    if fixed:
        g = quantize(g)[0]
    (pool,) = g.pools
    assert pool.source in plan_of(g).whole_window
    x = batch(g, seed=5)
    res = simulate(g, x, record_spikes=True)
    assert_counts_consistent(res)
    assert_pool_ors_its_source(res, pool)
    quiet = simulate(g, x)
    for name, n in res.counts.items():
        np.testing.assert_array_equal(quiet.counts[name], n, err_msg=name)
    np.testing.assert_array_equal(quiet.output, res.output)
    if case != "stream":
        ref = evaluate(g, x)
        for name, n in ref.counts.items():
            np.testing.assert_array_equal(res.counts[name], n, err_msg=name)
        np.testing.assert_array_equal(res.output, ref.output)
    if fixed:  # a fresh graph object: a plan that steps every population
        monkeypatch.setattr(closed_form, "exact_for", lambda pop, fixed: False)
        stepped = replace(g)
        assert not plan_of(stepped).whole_window
        res_stepped = simulate(stepped, x, record_spikes=True)
        for name, s in res.spikes.items():
            np.testing.assert_array_equal(res_stepped.spikes[name], s, err_msg=name)
        np.testing.assert_array_equal(res_stepped.output, res.output)


@pytest.mark.parametrize("mode", ["float64", "float32", "fixed"])
def test_train_delivered_in_chunks_of_steps_equals_all_steps_at_once(mode, monkeypatch):
    """A closed-form train projected into its stream targets a few steps per call
    (``TRAIN_CHUNK_VALUES``: one step, two steps) gives every spike, count and readout bit
    for bit as all its steps in one call."""
    from pseudosnn.simulator import engine

    runs = {}
    for seed in range(3):
        g = random_graph("cnn", seed=seed, stream=True)
        g = quantize(g)[0] if mode == "fixed" else g
        plan = engine.plan_of(g)
        assert any(pr.target in plan.stream_targets and plan.window[name][1] > 2
                   for name in plan.whole_window for pr in plan.outgoing[name])
        x = batch(g, seed=seed)
        step_values = max(np.prod(g.shape_of(name)) for name in plan.whole_window) * len(x)
        precision = "float32" if mode == "float32" else "float64"
        for chunk in (1 << 40, 1, 2 * step_values):
            monkeypatch.setattr(engine, "TRAIN_CHUNK_VALUES", int(chunk))
            runs[chunk] = simulate(g, x, record_spikes=True, precision=precision)
        whole = runs.pop(1 << 40)
        assert whole.spikes_per_step and sum(int(n.sum()) for n in whole.counts.values()) > 0
        for res in runs.values():
            assert res.output.tobytes() == whole.output.tobytes()
            for name, s in whole.spikes.items():
                np.testing.assert_array_equal(res.spikes[name], s, err_msg=name)
