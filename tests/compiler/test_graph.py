from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.compiler import artifact
from pseudosnn.compiler.spiking.graph import GraphError, Projection
from pseudosnn.compiler.spiking.reference import evaluate
from pseudosnn.compiler.testing import random_graph


@pytest.mark.parametrize("kind", ["mlp", "cnn", "residual"])
def test_reference_fires_and_artifact_roundtrips(tmp_path, kind):
    g = random_graph(kind, seed=3)
    x = np.random.default_rng(0).normal(size=(4, *g.input.shape))
    ref = evaluate(g, x)
    total = sum(int(n.sum()) for n in ref.counts.values())
    assert total > 0
    artifact.save(g, tmp_path / "art")
    g2 = artifact.load(tmp_path / "art")
    ref2 = evaluate(g2, x)
    assert np.array_equal(ref.output, ref2.output)
    for k in ref.counts:
        assert np.array_equal(ref.counts[k], ref2.counts[k])
    assert g2.latency_steps == g.latency_steps


def test_tampered_artifact_is_rejected(tmp_path):
    g = random_graph("mlp")
    out = artifact.save(g, tmp_path / "art")
    data = bytearray((out / "graph.json").read_bytes())
    data[-3] ^= 1
    (out / "graph.json").write_bytes(bytes(data))
    with pytest.raises(artifact.ArtifactError, match="sha256"):
        artifact.load(out)


def test_invalid_graph_names_the_problem():
    g = random_graph("mlp")
    bad = g.with_populations([p if i else type(p)(**{**p.__dict__, "v0": 2.0})
                              for i, p in enumerate(g.populations)])
    with pytest.raises(GraphError, match="v0"):
        bad.validate()


def test_fixed_point_artifact_stores_int8_weights_and_loads_them_exactly(tmp_path):
    from pseudosnn.compiler.quantize import quantize

    g, _ = quantize(random_graph("cnn", seed=4))
    out = artifact.save(g, tmp_path / "fx")
    with np.load(out / "weights.npz") as npz:
        stored = {k: npz[k].dtype for k in npz.files if k.endswith("/weight")}
    assert {str(d) for k, d in stored.items() if not k.startswith("proj/input")} == {"int8"}
    g2 = artifact.load(out)
    for a, b in zip(g.projections, g2.projections, strict=True):
        assert np.array_equal(a.weight, b.weight) and b.weight.dtype == a.weight.dtype
    for a, b in zip(g.populations, g2.populations, strict=True):
        assert np.array_equal(a.bias, b.bias) and b.timesteps.dtype == np.int64
    x = np.random.default_rng(1).normal(size=(3, *g.input.shape))
    assert np.array_equal(evaluate(g, x).output, evaluate(g2, x).output)


def test_fused_pool_conv_kernels_are_stored_as_blocks_and_expand_exactly(tmp_path):
    from pseudosnn.compiler.spiking.schedule import schedule

    g = random_graph("cnn", seed=6)
    k = np.random.default_rng(2).normal(size=(6, 4, 3, 3))
    fused = np.repeat(np.repeat(k, 2, axis=2), 2, axis=3) / 4  # avgpool(2) then conv 3x3
    projs = tuple(replace(p, weight=fused, padding=(2, 2))
                  if p.name == "conv1->conv2" else p for p in g.projections)
    g = schedule(type(g)(g.input, g.populations, g.readout, projs))
    out = artifact.save(g, tmp_path / "art")
    with np.load(out / "weights.npz") as npz:
        assert npz["proj/conv1->conv2/weight"].shape == (6, 4, 3, 3)
    g2 = artifact.load(out)
    loaded = {p.name: p.weight for p in g2.projections}
    assert np.array_equal(loaded["conv1->conv2"], fused)  # bit for bit
    assert loaded["input->conv1"].shape == (4, 2, 3, 3)  # not block-constant: as is


def test_weights_shared_by_residual_summands_are_stored_once(tmp_path):
    """A SEW-style sum ``W @ (n_a + n_b)`` is two projections with one weight matrix."""
    from pseudosnn.compiler.spiking.graph import (
        InputNode,
        Population,
        Readout,
        SpikingGraph,
    )
    from pseudosnn.compiler.spiking.schedule import schedule

    rng = np.random.default_rng(0)
    shared = rng.normal(size=(4, 3))
    pops = tuple(Population(n, (3,), np.int64(t), 1.0, np.zeros(3), 0.5)
                 for n, t in (("a", 2), ("b", 5)))
    projs = (Projection("in->a", "input", "a", "dense", rng.normal(size=(3, 2)), delay=0),
             Projection("in->b", "input", "b", "dense", rng.normal(size=(3, 2)), delay=0),
             Projection("a->out", "a", "out", "dense", shared),
             Projection("b->out", "b", "out", "dense", shared.copy()))
    g = schedule(SpikingGraph(InputNode((2,)), pops, Readout("out", (4,), np.zeros(4)), projs))
    out = artifact.save(g, tmp_path / "art")
    with np.load(out / "weights.npz") as npz:
        assert "proj/a->out/weight" in npz.files and "proj/b->out/weight" not in npz.files
    g2 = artifact.load(out)
    assert all(np.array_equal(p.weight, q.weight)
               for p, q in zip(g.projections, g2.projections, strict=True))
    x = rng.normal(size=(5, 2))
    assert np.array_equal(evaluate(g, x).output, evaluate(g2, x).output)


def test_global_pool_linear_is_stored_per_channel_and_expands_exactly(tmp_path):
    g = random_graph("cnn", seed=7)
    rng = np.random.default_rng(3)
    per_channel = rng.normal(size=(5, 6))  # conv2 is (6, 4, 4): pool over 16 pixels
    pooled = np.repeat(per_channel / 16, 16, axis=1)
    projs = tuple(replace(p, weight=pooled) if p.target == "out" else p
                  for p in g.projections)
    g = type(g)(g.input, g.populations, g.readout, projs)
    out = artifact.save(g, tmp_path / "art")
    with np.load(out / "weights.npz") as npz:
        assert npz["proj/conv2->out/weight"].shape == (5, 6)
    g2 = artifact.load(out)
    assert np.array_equal([p for p in g2.projections if p.target == "out"][0].weight, pooled)
    x = rng.normal(size=(2, *g.input.shape))
    assert np.array_equal(evaluate(g, x).output, evaluate(g2, x).output)
