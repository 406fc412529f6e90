"""The NIR frontend on hand-built graphs against a literal time loop of the NIR spec (forward
Euler with ``dt``, every node updated in the step its inputs arrive, ``v > θ``, reset to
``v_reset``, start at rest), written here independently of the compiler: linear chains
with no neuron between them, Scale, sum pooling, 1-D convolutions, a skip connection whose
paths have different lengths (the delay alignment), CubaLIF, IF and Threshold neurons, and
every kind of readout (spike counts, a summed linear output with the input reaching it
directly, an LI and an I state); and each with a new input every step (``--frames``)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from pseudosnn.compiler.frontend.nir import NirOptions, load_nir
from pseudosnn.compiler.frontend.nir_dialects import NirMappingError
from pseudosnn.compiler.spiking.synapses import conv2d
from pseudosnn.simulator.engine import simulate

nir = pytest.importorskip("nir")
DT, STEPS = 1e-3, 12


def _pair(v):
    a = np.atleast_1d(np.asarray(v)).astype(int)
    return int(a[0]), int(a[-1])


def _linear(n, x):
    """One linear NIR node on one sample ``x`` (NIR shapes, no batch)."""
    if isinstance(n, nir.Affine):
        return n.weight @ x + n.bias
    if isinstance(n, nir.Linear):
        return n.weight @ x
    if isinstance(n, nir.Scale):
        return n.scale * x
    if isinstance(n, nir.Flatten):
        return x.reshape(-1)
    if isinstance(n, nir.Conv1d):
        y = conv2d(x[None, :, None, :], n.weight[:, :, None, :], (1, _pair(n.stride)[0]),
                   (0, _pair(n.padding)[0]))
        return y[0, :, 0] + n.bias[:, None]
    if isinstance(n, nir.Conv2d):
        return conv2d(x[None], n.weight, _pair(n.stride), _pair(n.padding))[0] + \
            n.bias[:, None, None]
    if isinstance(n, nir.SumPool2d):
        c = x.shape[0]
        w = np.ones((c, 1, *_pair(n.kernel_size)))
        return conv2d(x[None], w, _pair(n.stride), _pair(n.padding), groups=c)[0]
    raise TypeError(type(n).__name__)


def _neuron(n, x, state):
    """One Euler step of a NIR neuron (or LI/I) from ``state``; returns its output."""
    v = state.get("v")
    if isinstance(n, nir.IF):
        v = (0 * x if v is None else v) + DT * n.r * x
    elif isinstance(n, nir.LIF | nir.LI):
        v = n.v_leak + 0 * x if v is None else v
        v = v + DT / n.tau * (n.v_leak - v + n.r * x)
    elif isinstance(n, nir.CubaLIF):
        i, v = state.get("i", 0 * x), n.v_leak + 0 * x if v is None else v
        i = i + DT / n.tau_syn * (-i + n.w_in * x)
        v = v + DT / n.tau_mem * (n.v_leak - v + n.r * i)
        state["i"] = i
    elif isinstance(n, nir.I):
        v = (0 * x if v is None else v) + DT * n.r * x
    elif isinstance(n, nir.Threshold):
        return (x > n.threshold).astype(float)
    if isinstance(n, nir.LI | nir.I):
        state["v"] = v
        return v
    s = (v > n.v_threshold).astype(float)
    state["v"] = np.where(s > 0, n.v_reset, v)
    return s


def reference(g, x: np.ndarray, steps: int = STEPS, frames: bool = False):
    """Every node's output at every step and the readout (module docstring); ``frames``:
    ``x[t]`` is the input at step ``t``, else ``x`` every step."""
    graph = nx.DiGraph(list(g.edges))
    order = list(nx.topological_sort(graph))
    inp = next(k for k, n in g.nodes.items() if isinstance(n, nir.Input))
    out = next(k for k, n in g.nodes.items() if isinstance(n, nir.Output))
    states = {k: {} for k in g.nodes}
    trace = {k: [] for k in g.nodes}
    for t in range(steps):
        val = {}
        for k in order:
            n = g.nodes[k]
            xin = (x[t] if frames else x) if k == inp else \
                sum(val[p] for p in graph.predecessors(k))
            if isinstance(n, nir.Input | nir.Output):
                val[k] = xin
            elif isinstance(n, nir.IF | nir.LIF | nir.CubaLIF | nir.LI | nir.I | nir.Threshold):
                val[k] = _neuron(n, xin, states[k])
            else:
                val[k] = _linear(n, xin)
            trace[k].append(val[k])
    src = next(graph.predecessors(out))
    final = isinstance(g.nodes[src], nir.LI | nir.I)
    readout = trace[out][-1] if final else np.sum(trace[out], axis=0)
    return {k: np.array(v) for k, v in trace.items()}, readout


def _lif(shape, tau=4e-3, thr=0.6, **kw):
    f = lambda v: np.full(shape, float(v))  # noqa: E731
    return nir.LIF(tau=f(tau), r=f(kw.pop("r", 1.0)), v_leak=f(kw.pop("v_leak", 0.0)),
                   v_threshold=f(thr), v_reset=f(kw.pop("v_reset", 0.0)))


def _affine(rng, n_out, n_in, scale=1.0):
    return nir.Affine(weight=rng.normal(0, scale, (n_out, n_in)), bias=rng.normal(0, 0.1, n_out))


def _graphs():
    rng = np.random.default_rng(0)
    conv = nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 0.6, (3, 2, 3, 3)), stride=1,
                      padding=1, dilation=1, groups=1, bias=rng.normal(0, 0.1, 3))
    skip = {  # input -> a -> A (LIF) -> b -> B (LIF) -> c -> C; and A -> s -> C (shorter path)
        "input": nir.Input(input_type={"input": np.array([5])}),
        "a": _affine(rng, 8, 5, 1.5), "A": _lif((8,), v_leak=0.1),
        "b": _affine(rng, 6, 8), "B": nir.IF(r=np.full(6, 1 / DT), v_threshold=np.full(6, 0.7),
                                             v_reset=np.full(6, -0.2)),
        "c": _affine(rng, 4, 6), "s": nir.Linear(weight=rng.normal(0, 1, (4, 8))),
        "C": nir.CubaLIF(tau_syn=np.full(4, 2e-3), tau_mem=np.full(4, 5e-3), r=np.full(4, 2.0),
                         v_leak=np.zeros(4), v_threshold=np.full(4, 0.3), v_reset=np.zeros(4),
                         w_in=np.full(4, 3.0)),
        "output": nir.Output(output_type={"output": np.array([4])})}
    chain = {  # conv -> sum pool -> LIF -> flatten -> Affine -> Scale -> Affine -> LI readout
        "input": nir.Input(input_type={"input": np.array([2, 6, 6])}), "conv": conv,
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "L": _lif((3, 3, 3), thr=0.8),
        "flat": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0, end_dim=-1),
        "f1": _affine(rng, 10, 27), "sc": nir.Scale(scale=rng.uniform(0.5, 2, 10)),
        "f2": _affine(rng, 5, 10), "T": nir.Threshold(threshold=np.full(5, 0.2)),
        "f3": _affine(rng, 3, 5),
        "li": nir.LI(tau=np.full(3, 6e-3), r=np.full(3, 1.5), v_leak=np.full(3, 0.05)),
        "output": nir.Output(output_type={"output": np.array([3])})}
    conv1d = {  # Conv1d -> IF -> flatten -> Affine -> output (summed), input -> Affine -> output
        "input": nir.Input(input_type={"input": np.array([2, 9])}),
        "c1": nir.Conv1d(input_shape=9, weight=rng.normal(0, 0.8, (3, 2, 3)), stride=2,
                         padding=1, dilation=1, groups=1, bias=np.zeros(3)),
        "F": nir.IF(r=np.full((3, 5), 1 / DT), v_threshold=np.ones((3, 5)),
                    v_reset=np.zeros((3, 5))),
        "flat": nir.Flatten(input_type={"input": np.array([3, 5])}, start_dim=0, end_dim=-1),
        "d": _affine(rng, 4, 15), "direct": _affine(rng, 4, 18),
        "dflat": nir.Flatten(input_type={"input": np.array([2, 9])}, start_dim=0, end_dim=-1),
        "output": nir.Output(output_type={"output": np.array([4])})}
    integrator = {
        "input": nir.Input(input_type={"input": np.array([5])}), "a": _affine(rng, 6, 5, 1.5),
        "A": _lif((6,)), "b": _affine(rng, 3, 6), "i": nir.I(r=np.full(3, 2.0)),
        "output": nir.Output(output_type={"output": np.array([3])})}
    return {
        "skip-connection": (skip, [("input", "a"), ("a", "A"), ("A", "b"), ("b", "B"),
                                   ("B", "c"), ("c", "C"), ("A", "s"), ("s", "C"),
                                   ("C", "output")], (5,)),
        "chain-li-readout": (chain, [("input", "conv"), ("conv", "pool"), ("pool", "L"),
                                     ("L", "flat"), ("flat", "f1"), ("f1", "sc"), ("sc", "f2"),
                                     ("f2", "T"), ("T", "f3"), ("f3", "li"), ("li", "output")],
                             (2, 6, 6)),
        "conv1d-summed-output": (conv1d, [("input", "c1"), ("c1", "F"), ("F", "flat"),
                                          ("flat", "d"), ("d", "output"), ("input", "dflat"),
                                          ("dflat", "direct"), ("direct", "output")], (2, 9)),
        "i-readout": (integrator, [("input", "a"), ("a", "A"), ("A", "b"), ("b", "i"),
                                   ("i", "output")], (5,)),
    }


@pytest.mark.parametrize("name", sorted(_graphs()))
def test_generic_dialect_equals_the_spec_loop(name, tmp_path):
    nodes, edges, shape = _graphs()[name]
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    nir.write(tmp_path / "g.nir", g)
    graph = load_nir(tmp_path / "g.nir", NirOptions("nir", DT, STEPS))
    xs = np.random.default_rng(1).uniform(0, 2, size=(3, *shape))
    res = simulate(graph, xs.reshape(3, *graph.input.shape), record_spikes=True)
    fired = 0
    for b, x in enumerate(xs):
        trace, readout = reference(g, x)
        for pop in graph.populations:
            ours = res.spikes[pop.name][b, pop.start:pop.start + STEPS]
            theirs = trace[pop.name].reshape(ours.shape)
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{name}: {pop.name}")
            fired += int(theirs.sum())
        np.testing.assert_allclose(res.output[b], readout, rtol=1e-9, atol=1e-9)
    assert fired > 0
    if name == "skip-connection":  # the short path waits one step more: delay 2
        delays = {(pr.source, pr.target): pr.delay for pr in graph.projections}
        assert delays[("A", "C")] == 2 and delays[("B", "C")] == 1


@pytest.mark.parametrize("name", sorted(_graphs()))
def test_frames_equal_the_spec_loop_fed_a_new_input_every_step(name, tmp_path):
    nodes, edges, shape = _graphs()[name]
    nir.write(tmp_path / "g.nir", nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    graph = load_nir(tmp_path / "g.nir", NirOptions("nir", DT, STEPS, frames=True))
    assert graph.input.frames == STEPS
    rng = np.random.default_rng(1)  # the constant test's inputs, varied per step
    xs = rng.uniform(0, 2, size=(3, 1, *shape)) * rng.uniform(0, 2, size=(3, STEPS, *shape))
    res = simulate(graph, xs.reshape(3, *graph.input.sample_shape), record_spikes=True)
    fired = 0
    for b, x in enumerate(xs):
        trace, readout = reference(g=nir.NIRGraph(nodes=nodes, edges=edges, type_check=False),
                                   x=x, frames=True)
        for pop in graph.populations:
            ours = res.spikes[pop.name][b, pop.start:pop.start + STEPS]
            np.testing.assert_array_equal(ours, trace[pop.name].reshape(ours.shape),
                                          err_msg=f"{name}: {pop.name}")
            fired += int(ours.sum())
        np.testing.assert_allclose(res.output[b], readout, rtol=1e-9, atol=1e-9)
    assert fired > 0
    first = load_nir(tmp_path / "g.nir", NirOptions("nir", DT, STEPS))
    const = simulate(first, xs[:, 0].reshape(3, *first.input.shape))
    assert not np.allclose(res.output, const.output)  # the frames were read, not the first


def test_frames_into_a_leaky_readout_directly_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "a": _affine(rng, 3, 4), "li": nir.LI(tau=np.full(3, 5e-3), r=np.ones(3),
                                                    v_leak=np.zeros(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "a"), ("a", "li"), ("li", "output")]
    nir.write(tmp_path / "g.nir", nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    load_nir(tmp_path / "g.nir", NirOptions("nir", DT, STEPS))  # without frames: read
    with pytest.raises(NirMappingError, match="reaches the leaky readout directly"):
        load_nir(tmp_path / "g.nir", NirOptions("nir", DT, STEPS, frames=True))
