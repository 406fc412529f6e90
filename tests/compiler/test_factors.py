"""Projections keep their trained factors (issue 14): ``out ⊙ base(sumpool(in ⊙ x))``.

The factorised current equals the composed (deployed) weight's; a residual sum's summands
through one trained layer are grouped into one base op; the composed weight is built only
when something asks for it; the artifact stores the factors (bases in their narrowest
exact dtype, and not at all when ``model.onnx`` holds them) and loads them bit for bit."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.compiler import artifact, ir
from pseudosnn.compiler.pipeline import run
from pseudosnn.compiler.spiking import reference
from pseudosnn.compiler.spiking.synapses import drive, project, synapse_groups


def _sew_like(rng):
    """stem -> avgpool -> a SEW-style block (spikes summed, no neuron after the sum) -> a
    conv reading the sum (distributed over two summands) -> global pool -> linear."""
    c, bn = 4, {"eps": 1e-5}

    def bn_node(name, src):
        return ir.Node(name, "BatchNorm", (src,), attrs=bn, params={
            "gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.2, c),
            "mean": rng.normal(0, 0.2, c), "var": rng.uniform(0.5, 2, c)})

    def trained(*shape, std=0.4):  # float32 values, as a checkpoint holds them
        return rng.normal(0, std, shape).astype(np.float32).astype(np.float64)

    w = trained(c, c, 3, 3)
    return ir.Graph((2, 8, 8), (
        ir.conv("stem", "input", trained(c, 2, 3, 3, std=0.7), None, padding=(1, 1)),
        bn_node("stem.bn", "stem"), ir.neuron("s0", "stem.bn", 3, out_scale=1.5),
        ir.Node("pool", "AvgPool", ("s0",), attrs={"kernel": (2, 2), "stride": (2, 2),
                                                  "padding": (0, 0)}),
        ir.conv("c1", "pool", w, None, padding=(1, 1)), bn_node("c1.bn", "c1"),
        ir.neuron("s1", "c1.bn", 5, scale=1.2),
        ir.Node("sum", "Add", ("s1", "pool")),
        ir.conv("c2", "sum", trained(c, c, 3, 3), None, padding=(1, 1)),
        ir.neuron("s2", "c2", 4),
        ir.Node("gap", "GlobalAvgPool", ("s2",)), ir.Node("flat", "Flatten", ("gap",)),
        ir.gemm("fc", "flat", trained(3, c, std=1.0), rng.normal(0, 0.1, 3)),
    ), "fc")


@pytest.fixture
def compiled(rng):
    g = _sew_like(rng)
    return g, run(g, verify=True).graph


def _composed(sg) -> list[str]:
    return [pr.name for pr in sg.projections if pr.__dict__.get("_weight") is not None]


def test_every_float_projection_keeps_its_trained_factors(compiled, rng):
    """... and nothing composes their deployed weights: not the compiler, the reference,
    the simulator in any precision, nor the per-layer counts of the energy report."""
    from pseudosnn.compiler.spiking.counting import deployed_layers
    from pseudosnn.simulator.engine import simulate

    g, sg = compiled
    assert all(pr.factors is not None for pr in sg.projections)
    x = rng.normal(0, 1, (2, *sg.input.shape))
    reference.evaluate(sg, x)
    for precision in ("float64", "float32"):
        res = simulate(sg, x, precision=precision, record_spikes=True)
    deployed_layers(sg, {k: float(v.sum()) for k, v in res.counts.items()}, res.sops)
    assert _composed(sg) == []
    by_name = {pr.name: pr for pr in sg.projections}
    c1 = by_name["c1.bn"]
    assert c1.factors.base is not None and c1.factors.pool == ((2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(c1.factors.base, g.node("c1").params["weight"])
    assert c1.weight_shape == (4, 4, 6, 6) and c1.stride == (2, 2) and c1.padding == (2, 2)
    fc = by_name["fc"]
    assert fc.factors.base.shape == (3, 4) and fc.weight_shape == (3, 4 * 4 * 4)


def test_factorised_current_equals_the_composed_weight(compiled, rng):
    _, sg = compiled
    for pr in sg.projections:
        shape = sg.shape_of(pr.source)
        x = rng.integers(0, 5, (3, *shape)).astype(np.float64)
        plain = replace(pr, weight=pr.weight)  # an explicit weight drops the factors
        assert plain.factors is None
        np.testing.assert_allclose(project(pr, x), project(plain, x), rtol=1e-12, atol=1e-12)


def test_residual_summands_share_one_base_op(compiled, rng):
    _, sg = compiled
    into = [pr for pr in sg.incoming("s2")]
    assert len(into) == 2 and into[0].factors.base is into[1].factors.base  # one layer
    assert into[0].factors.pool != into[1].factors.pool  # one summand went through the pool
    assert [len(grp) for grp in synapse_groups(sg, "s2")] == [2]
    counts = {p.name: rng.integers(0, int(p.t_max) + 1, (3, *p.shape)) for p in sg.populations}
    grouped = drive(sg, "s2", counts)
    separate = sum(project(pr, counts[pr.source]) for pr in into)
    np.testing.assert_allclose(grouped, separate, rtol=1e-12, atol=1e-12)


def test_artifact_stores_factors_narrow_and_loads_them_bit_for_bit(compiled, tmp_path, rng):
    from pseudosnn.compiler.onnx_io import to_onnx

    g, sg = compiled
    onnx_bytes = to_onnx(g).SerializeToString()
    art = artifact.save(sg, tmp_path / "art", extra_files={"model.onnx": onnx_bytes})
    desc = json.loads((art / "graph.json").read_text())
    in_onnx = desc["in_onnx"]
    assert in_onnx  # the trained convs live in model.onnx only
    with np.load(art / "weights.npz") as npz:
        stored = {k: npz[k] for k in npz.files}
    assert not any(k.endswith("/base") for k in stored)
    assert len(in_onnx) == 4  # stem, c1, c2 (shared by its two summands), fc
    loaded = artifact.load(art)
    for a, b in zip(sg.projections, loaded.projections, strict=True):
        np.testing.assert_array_equal(a.factors.base, b.factors.base)
        assert b.factors.base.dtype == np.float32  # narrowest exact, kept narrow
    x = rng.normal(0, 1, (4, *sg.input.shape))
    r1, r2 = reference.evaluate(sg, x), reference.evaluate(loaded, x)
    np.testing.assert_array_equal(r1.output, r2.output)
    # without model.onnx the bases go into weights.npz, still as float32
    art2 = artifact.save(sg, tmp_path / "art2")
    with np.load(art2 / "weights.npz") as npz:
        assert all(npz[k].dtype == np.float32 for k in npz.files if k.endswith("/base"))
    np.testing.assert_array_equal(reference.evaluate(artifact.load(art2), x).output, r1.output)


def _preact_like(rng):
    """A residual stream with no neuron on it (PreAct-ResNet): ``c1``'s current feeds ``s1``
    and the sum ``c2(s1) + c1``, which a strided 1x1 shortcut (with BN) reads; ``s3`` reads
    ``c3(s2) + shortcut`` and the readout ``c4(s3) + c3(s2) + shortcut`` through a global
    pool. Shortcut∘conv and
    linear∘pool∘shortcut∘conv are composed (nested) bases."""
    c = 4

    def trained(*shape, std=0.4):
        return rng.normal(0, std, shape).astype(np.float32).astype(np.float64)

    return ir.Graph((2, 8, 8), (
        ir.conv("stem", "input", trained(c, 2, 3, 3, std=0.7), None, padding=(1, 1)),
        ir.neuron("s0", "stem", 3),
        ir.conv("c1", "s0", trained(c, c, 3, 3), None, padding=(1, 1)),
        ir.neuron("s1", "c1", 4),
        ir.conv("c2", "s1", trained(c, c, 3, 3), None, padding=(1, 1)),
        ir.Node("sum", "Add", ("c2", "c1")),
        ir.conv("sc", "sum", trained(c, c, 1, 1), None, stride=(2, 2)),
        ir.Node("sc.bn", "BatchNorm", ("sc",), attrs={"eps": 1e-5}, params={
            "gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.2, c),
            "mean": rng.normal(0, 0.2, c), "var": rng.uniform(0.5, 2, c)}),
        ir.neuron("s2", "sum", 5),
        ir.conv("c3", "s2", trained(c, c, 3, 3), None, padding=(1, 1), stride=(2, 2)),
        ir.Node("out", "Add", ("c3", "sc.bn")),
        ir.neuron("s3", "out", 4),
        ir.conv("c4", "s3", trained(c, c, 3, 3), None, padding=(1, 1)),
        ir.Node("out2", "Add", ("c4", "out")),
        ir.Node("gap", "GlobalAvgPool", ("out2",)), ir.Node("flat", "Flatten", ("gap",)),
        ir.gemm("fc", "flat", trained(3, c, std=1.0), rng.normal(0, 0.1, 3)),
    ), "fc")


def test_composed_bases_are_stored_as_their_recipe_and_composed_again_exactly(tmp_path, rng):
    """A base composed of trained layers is stored as its trained pieces plus the recipe;
    loading composes it again by the compiler's code: the same bytes and dtype as the
    compiler's composition stored narrowest, the same outputs; a recipe that composes to
    other bytes (e.g. another numerical library) is refused by name."""
    from pseudosnn.compiler.onnx_io import to_onnx

    g = _preact_like(rng)
    sg = run(g, verify=True).graph
    composed = [pr for pr in sg.projections if pr.factors.composition is not None]
    assert {pr.factors.composition.fusion for pr in composed} == {"compose_convs",
                                                                   "fuse_gemm_conv"}
    art = artifact.save(sg, tmp_path / "art",
                        extra_files={"model.onnx": to_onnx(g).SerializeToString()})
    desc = json.loads((art / "graph.json").read_text())
    recipes = {p["name"]: p["factors"]["base"] for p in desc["projections"]
               if isinstance(p["factors"]["base"], dict)}
    assert set(recipes) == {pr.name for pr in composed}
    assert any(isinstance(r[side]["params"].get("weight"), dict)
               for r in recipes.values() for side in ("outer", "inner"))  # a recipe's recipe
    with np.load(art / "weights.npz") as npz:
        stored = {k: npz[k] for k in npz.files}
    assert not any(k.endswith("/base") for k in stored)  # trained pieces live in model.onnx
    loaded = artifact.load(art)
    for a, b in zip(sg.projections, loaded.projections, strict=True):
        want = artifact._narrowest(np.asarray(a.factors.base))
        assert b.factors.base.dtype == want.dtype and b.factors.base.tobytes() == want.tobytes()
    x = rng.normal(0, 1, (4, *sg.input.shape))
    np.testing.assert_array_equal(reference.evaluate(loaded, x).output,
                                  reference.evaluate(sg, x).output)
    with np.load(art / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(artifact._onnx_arrays((art / "model.onnx").read_bytes(), desc["in_onnx"]))
    recipes[composed[0].name]["sha256"] = "0" * 64
    with pytest.raises(artifact.ArtifactError, match="came out different .* recompile"):
        artifact.graph_from_records(desc, arrays)
