"""The counting module against brute force: fan-out by one-hot propagation, SOPs by
enumerating every delivered (event, synapse) pair, encoder and trained-layer MACs by
convolving all-ones (what NeuroBench's ``Dense`` count does), neuron updates by windows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.graph import Projection
from pseudosnn.compiler.spiking.synapses import conv2d, project
from pseudosnn.compiler.testing import random_graph


def targets_of(pr: Projection, source_shape) -> np.ndarray:
    """(source neurons, target neurons) 0/1 matrix of the projection's synapses, built by
    sending one event at a time through the projection with all-ones weights."""
    n = int(np.prod(source_shape))
    ones = replace(pr, weight=np.ones_like(pr.weight, dtype=np.float64), event_scale=None,
                   weight_exp=0)
    basis = np.eye(n).reshape(n, *source_shape)
    return (project(ones, basis) != 0).reshape(n, -1)


@pytest.mark.parametrize("stride,padding,groups", [((1, 1), (1, 1), 1), ((2, 2), (1, 1), 1),
                                                   ((2, 2), (0, 0), 2), ((1, 1), (2, 2), 1),
                                                   ((2, 1), (1, 0), 4)])
def test_conv_fanout_counts_borders_exactly(stride, padding, groups):
    pr = Projection("p", "a", "b", "conv", np.ones((4, 4 // groups, 3, 3)),
                    stride=stride, padding=padding, groups=groups)
    shape = (4, 7, 6)
    want = targets_of(pr, shape).sum(axis=1).reshape(shape)
    np.testing.assert_array_equal(counting.fanout(pr, shape), want)
    assert counting.synapses(pr, shape) == int(want.sum())


@pytest.mark.parametrize("kind", ["mlp", "cnn", "residual"])
def test_sops_enumerate_every_delivered_event(kind):
    g = random_graph(kind, seed=4, per_channel=kind != "mlp")
    rng = np.random.default_rng(0)
    counts = {p.name: rng.integers(0, p.t_max + 1, size=(3, *p.shape)) for p in g.populations}
    sops = counting.sops(g, counts)
    for pr in g.projections:
        if pr.is_encoder:
            assert pr.name not in sops
            continue
        shape = g.shape_of(pr.source)
        synapses = targets_of(pr, shape)
        events = counts[pr.source].reshape(3, -1)
        delivered = sum(int(e) for b in range(3) for i, e in enumerate(events[b])
                        for _ in range(int(synapses[i].sum())))
        assert sops[pr.name] == delivered, pr.name
    # summed counts (*shape) give the same SOPs as the batch (B, *shape)
    assert counting.sops(g, {k: v.sum(0) for k, v in counts.items()}) == sops


def test_encoder_macs_are_structural_synapses():
    g = random_graph("cnn", seed=1)
    enc = [pr for pr in g.projections if pr.is_encoder]
    want = sum(int(targets_of(pr, g.input.shape).sum()) for pr in enc)
    assert counting.encoder_macs(g) == want
    padded = sum(int(np.prod(pr.weight.shape[1:])) * int(np.prod(g.shape_of(pr.target)))
                 for pr in enc)
    assert want < padded  # padding taps are not synapses


def test_neuron_updates_active_in_windows_idle_outside():
    g = random_graph("residual", seed=2, per_channel=True)
    updates = counting.neuron_updates(g)
    for p in g.populations:
        T = p.timesteps_full()
        in_window = sum(int(((t >= p.start) & (t < p.start + T)).sum())
                        for t in range(g.latency_steps))
        assert updates[p.name] == (in_window, p.size * g.latency_steps - in_window)


@pytest.mark.parametrize("shape,kernel,stride,padding,groups", [
    ((3, 9, 8), (3, 3), (1, 1), (1, 1), 1), ((4, 8, 8), (3, 3), (2, 2), (1, 1), 2),
    ((2, 7, 7), (7, 7), (2, 2), (3, 3), 1), ((6, 5, 5), (1, 1), (2, 2), (0, 0), 3)])
def test_trained_conv_macs_equal_an_all_ones_convolution(shape, kernel, stride, padding,
                                                         groups):
    """NeuroBench's ``Dense`` count: convolve all-ones inputs with all-ones weights; each
    output is the number of (non-padding) multiply-accumulates that produce it."""
    c_out = 6
    y = conv2d(np.ones((1, *shape)), np.ones((c_out, shape[0] // groups, *kernel)), stride,
               padding, groups)
    layer = counting.Layer("c", "conv", shape, y.shape[1:], kernel=kernel, stride=stride,
                           padding=padding, groups=groups)
    assert counting.layer_ops(layer) == {"macs": int(y.sum()), "adds": 0}
    flops = int(np.prod(y.shape[1:])) * (shape[0] // groups) * kernel[0] * kernel[1]
    assert counting.paper_flops(layer) == flops >= int(y.sum())  # the paper counts padding


def test_pool_add_and_linear_ops():
    pool = counting.Layer("p", "avgpool", (4, 6, 6), (4, 3, 3), kernel=(2, 2), stride=(2, 2))
    assert counting.layer_ops(pool) == {"macs": 0, "adds": 4 * 36}
    add = counting.Layer("a", "add", (4, 3, 3), (4, 3, 3), terms=3)
    assert counting.layer_ops(add) == {"macs": 0, "adds": 2 * 36}
    fc = counting.Layer("f", "linear", (36,), (10,))
    assert counting.layer_ops(fc) == {"macs": 360, "adds": 0}
    mp = counting.Layer("m", "maxpool", (4, 6, 6), (4, 3, 3), kernel=(3, 3), stride=(2, 2),
                        padding=(1, 1))  # taps per axis: 3 windows of 3, minus 1 padding tap
    assert counting.layer_ops(mp) == {"macs": 0, "adds": 0, "compares": 4 * 8 * 8}
    assert counting.paper_flops(mp) == 0  # the paper's zero_ops
    assert counting.ann_ops([pool, add, fc, mp]) == {"macs": 360, "adds": 216,
                                                     "compares": 256}
    assert counting.Layer.from_dict(pool.as_dict()) == pool


def test_chain_fanout_is_the_fused_projection():
    """avgpool(2) then conv 3x3 pad 1 is deployed as a 6x6 stride-2 conv with padding 2."""
    chain = [counting.Layer("p", "avgpool", (4, 8, 8), (4, 4, 4), kernel=(2, 2), stride=(2, 2)),
             counting.Layer("c", "conv", (4, 4, 4), (6, 4, 4), kernel=(3, 3), padding=(1, 1))]
    fused = Projection("f", "a", "b", "conv", np.ones((6, 4, 6, 6)), stride=(2, 2),
                       padding=(2, 2))
    np.testing.assert_array_equal(counting.chain_fanout((4, 8, 8), chain),
                                  counting.fanout(fused, (4, 8, 8)))
    np.testing.assert_array_equal(counting.chain_fanout((4, 8, 8), []), np.ones((4, 8, 8)))


def test_pool_compares_enumerate_every_event_in_every_window():
    """A spike pool's compares: each source event, once per window that holds it (brute
    force over the windows); the analog stem's: every value of the map it pools."""
    g = random_graph("cnn", seed=3, pool=True)
    (pool,) = g.pools
    c, h, w = g.shape_of(pool.source)
    counts = {pool.source: np.random.default_rng(0).integers(0, 5, (2, c, h, w))}
    brute = 0
    for i in range(pool.shape[1]):
        for j in range(pool.shape[2]):
            y0, x0 = i * pool.stride[0] - pool.padding[0], j * pool.stride[1] - pool.padding[1]
            ys = slice(max(y0, 0), max(y0 + pool.kernel[0], 0))
            xs = slice(max(x0, 0), max(x0 + pool.kernel[1], 0))
            brute += int(counts[pool.source][:, :, ys, xs].sum())
    assert counting.pool_compares(g, counts) == {pool.name: brute}
    stem = random_graph("cnn", seed=3, stem=True).input.stem
    cc, hh, ww = stem.conv_shape  # 3x3/2 pad 1 on 16x16: 8 windows of 3, minus 1 padding tap
    assert counting.encoder_compares(replace(g, input=replace(g.input, stem=stem))) == \
        cc * (3 * 8 - 1) ** 2


def test_leak_multiplies_count_every_update_active_and_idle():
    """A decay costs one multiply per neuron per step of the whole latency (idle neurons
    leak too); ``du = 1`` (no current state) and ``dv = 0`` cost none."""
    from pseudosnn.compiler.spiking.semantics import Dynamics
    from pseudosnn.compiler.testing import with_dynamics

    g = random_graph("mlp", seed=1, stream=True)
    assert counting.leak_multiplies(g) == {"fc0": 0, "fc1": 0}
    steps = g.latency_steps
    lif = with_dynamics(g, Dynamics(dv=0.5, reset="hard"), v0=0.0)
    assert counting.leak_multiplies(lif) == {"fc0": 24 * steps, "fc1": 12 * steps}
    cuba = with_dynamics(g, Dynamics(du=0.25, dv=0.5))
    assert counting.leak_multiplies(cuba) == {"fc0": 2 * 24 * steps, "fc1": 2 * 12 * steps}
    assert counting.leak_multiplies(with_dynamics(g, Dynamics(du=0.0))) == {"fc0": 0, "fc1": 0}


def test_deployed_layers_of_leaky_populations_update_every_step():
    """What the energy model prices: a leaky population reads and writes every membrane at
    every step of the latency and pays its decay multiplies; a hard-reset IF only in its
    window, with no multiply."""
    from pseudosnn.compiler.spiking.semantics import Dynamics
    from pseudosnn.compiler.testing import with_dynamics

    g = random_graph("mlp", seed=1, stream=True)
    spikes = {p.name: 1.0 for p in g.populations}
    steps = g.latency_steps
    for dyn, leaky in ((Dynamics(dv=0.5, reset="hard"), True), (Dynamics(reset="hard"), False)):
        layers = counting.deployed_layers(with_dynamics(g, dyn, v0=0.0), spikes, {})
        for layer in layers[:-1]:
            assert layer.state_updates == (layer.neurons * steps if leaky
                                           else layer.active_updates)
            assert layer.leak_multiplies == (layer.neurons * steps if leaky else 0)
        assert layers[-1].leak_multiplies == 0  # the readout


def test_a_leaky_layer_that_feeds_a_spike_pool_owns_its_compares_and_its_leak():
    """Both together: the pooled population's layer carries the pool's compares and its own
    decay multiplies; a spike pool has no membrane (no leak, no update of its own)."""
    from pseudosnn.compiler.spiking.semantics import Dynamics
    from pseudosnn.compiler.testing import with_dynamics

    g = with_dynamics(random_graph("cnn", seed=3, pool=True, stream=True),
                      Dynamics(dv=0.25, reset="hard"), v0=0.0)
    (pool,) = g.pools
    spikes = {name: 1.0 for name in (*[p.name for p in g.populations], pool.name)}
    layers = {layer.name: layer for layer in
              counting.deployed_layers(g, spikes, {}, compares={pool.name: 7.0})}
    assert pool.name not in layers and pool.name not in counting.leak_multiplies(g)
    src = layers[pool.source]
    assert src.compares == 7.0
    assert src.leak_multiplies == src.neurons * g.latency_steps == src.state_updates
    assert layers["conv2"].compares == 0 and layers["conv2"].leak_multiplies > 0
