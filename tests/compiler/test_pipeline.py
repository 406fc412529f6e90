"""pipeline: every pass module is in the one list; --verify names the pass that broke."""

from __future__ import annotations

import pkgutil
from dataclasses import replace

import numpy as np
import pytest
from pseudosnn.compiler import ir, passes, pipeline


def test_every_pass_module_is_in_the_pipeline():
    listed = {fn.__module__.rsplit(".", 1)[-1] for _, fn in pipeline.IR_PASSES}
    listed.add("schedule")  # spiking-graph stage, run after lowering
    modules = {m.name for m in pkgutil.iter_modules(passes.__path__) if not m.name.startswith("_")}
    assert modules == listed


def _net(rng):
    return ir.Graph((2, 4, 4), (
        ir.conv("c", "input", rng.normal(0, 1, (3, 2, 3, 3)), rng.normal(0, 0.1, 3),
                padding=(1, 1)),
        ir.Node("bn", "BatchNorm", ("c",), attrs={"eps": 1e-5}, params={
            "gamma": np.ones(3), "beta": np.zeros(3), "mean": np.zeros(3), "var": np.ones(3)}),
        ir.neuron("n", "bn", 4),
        ir.gemm("fc", "n", rng.normal(0, 1, (2, 48))),
    ), "fc")


def test_verify_passes_on_a_good_pipeline(rng):
    res = pipeline.run(_net(rng), verify=True, fixed_point=True)
    assert res.stages[-3:] == ["lower", "schedule", "quantize"]
    assert res.fixed is not None and res.fixed.fixed_point


def test_verify_names_the_broken_pass(rng, monkeypatch):
    def broken_bn_fold(g):
        out = pipeline.fold_batchnorm(g)
        return out.with_nodes(replace(n, params={**n.params, "weight": n.params["weight"] * 3})
                              if n.op == "Gemm" else n for n in out.nodes)

    monkeypatch.setattr(pipeline, "IR_PASSES",
                        [("bn_fold", broken_bn_fold), *pipeline.IR_PASSES[1:]])
    with pytest.raises(pipeline.VerifyError, match="pass 'bn_fold' changed the network"):
        pipeline.run(_net(rng), verify=True)


def test_verify_names_a_broken_invariant(rng, monkeypatch):
    def dangling(g):
        return g.with_nodes([*g.nodes, ir.gemm("x", "nowhere", np.ones((1, 1)))])

    monkeypatch.setattr(pipeline, "IR_PASSES", [*pipeline.IR_PASSES[:2], ("flatten", dangling)])
    with pytest.raises(pipeline.VerifyError, match="pass 'flatten' broke an IR invariant"):
        pipeline.run(_net(rng), verify=True)
