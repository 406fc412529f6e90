import numpy as np
import pytest

from pseudosnn.compiler import artifact
from pseudosnn.compiler.graph import GraphError, Projection
from pseudosnn.compiler.reference import evaluate
from pseudosnn.compiler.testing import random_graph


def brute_force_fanout(pr: Projection, shape):
    """Count targets of each source pixel by convolving a one-hot input."""
    from pseudosnn.compiler.linalg import conv2d

    c, h, w = shape
    out = np.zeros(shape, dtype=np.int64)
    ones = np.ones_like(pr.weight)
    for idx in np.ndindex(*shape):
        x = np.zeros((1, c, h, w))
        x[(0, *idx)] = 1
        out[idx] = (conv2d(x, ones, pr.stride, pr.padding, pr.groups) != 0).sum()
    return out


@pytest.mark.parametrize("stride,padding,groups", [((1, 1), (1, 1), 1), ((2, 2), (1, 1), 1),
                                                   ((2, 2), (0, 0), 2), ((1, 1), (2, 2), 1)])
def test_conv_fanout_counts_borders_exactly(stride, padding, groups):
    pr = Projection("p", "a", "b", "conv", np.ones((4, 4 // groups, 3, 3)),
                    stride=stride, padding=padding, groups=groups)
    shape = (4, 7, 6)
    assert np.array_equal(pr.fanout(shape), brute_force_fanout(pr, shape))


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
