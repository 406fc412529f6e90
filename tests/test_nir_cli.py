"""NIR through the command line: an snnTorch network compiled from its own NIR file is
simulated (the energy report names snnTorch), run on Lava (spike counts equal the
simulator's) and exported again; our rate-coupled networks export only with ``--lossy``,
which measures what plain NIR readers lose."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pseudosnn.compiler.artifact import load

from pseudosnn.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("snntorch")


def _cli(*argv):
    res = CliRunner().invoke(main, [str(a) for a in argv])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res.output


@pytest.fixture(scope="module")
def snn_artifact(tmp_path_factory):
    from pseudosnn.compiler.frontend.nir_libraries import snntorch_run

    root = tmp_path_factory.mktemp("nir-cli")
    torch.set_num_threads(1)
    run = snntorch_run(root, steps=12, batch=2)
    out = _cli("compile", run.path, "-o", root / "art", "--from", "snntorch", "--timesteps", 12,
               "--calib", "digits", "--calib-samples", 32)
    assert "imported from snnTorch 1.0.0 via NIR (--from snntorch, dt 0.0001, 12 steps)" in out
    assert "readout: the spike counts of '4' over the 12 steps" in out
    return root


def test_simulate_names_the_source_framework(snn_artifact):
    out = _cli("simulate", snn_artifact / "art", "--data", "digits", "--limit", 16, "--quiet",
               "--report", snn_artifact / "report")
    assert "art (snnTorch 1.0.0 network, imported via NIR): 16 samples" in out
    report = json.loads((snn_artifact / "report" / "art.json").read_text())
    assert report["source_framework"] == "snnTorch 1.0.0"
    assert report["totals"]["energy_pj_per_sample"] > 0 and report["ann"] is not None


def test_run_on_lava_equals_the_simulator(snn_artifact, lava_python):
    out = _cli("run", snn_artifact / "art", "--target", "lava", "--samples", 4, "--check")
    assert "'counts_equal': True" in out and "'readout_equal': True" in out


def test_export_of_an_imported_snntorch_graph_is_exact(snn_artifact):
    out = _cli("export", snn_artifact / "art", "-o", snn_artifact / "again.nir")
    assert "exact for plain readers" in out
    from pseudosnn.compiler.frontend.nir import load_nir

    back = load_nir(snn_artifact / "again.nir")
    graph = load(snn_artifact / "art")
    x = np.random.default_rng(0).random((2, 1, 8, 8))
    from pseudosnn.simulator.engine import simulate

    np.testing.assert_array_equal(simulate(graph, x).output, simulate(back, x).output)


def test_lossy_export_measures_the_loss(tmp_path):
    from pseudosnn.compiler.artifact import save
    from pseudosnn.compiler.testing import random_graph

    graph = random_graph("cnn", seed=1)  # rate coupling, soft reset, v0 = θ/2, several T
    save(graph, tmp_path / "rate")
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(3).normal(0, 1, (40, 2, 8, 8)),
             y=np.arange(40) % 5)
    out = _cli("export", tmp_path / "rate", "-o", tmp_path / "r.nir", "--lossy", "--data",
               f"npz:{tmp_path / 'd.npz'}")
    assert "lossy for plain NIR readers: population 'conv1' resets by subtraction" in out
    assert "plain NIR reading (NIR spec, forward Euler dt = 0.0001" in out
    line = next(x for x in out.splitlines() if "of neurons x samples differ" in x)
    differ = float(line.split("spike counts: ")[1].split("%")[0])
    assert 0 < differ <= 100
    assert "accuracy" in out and "predictions agree on" in out
    from pseudosnn.compiler.frontend.nir import load_nir

    back = load_nir(tmp_path / "r.nir")  # still exact for our importer
    x = np.random.default_rng(4).normal(0, 1, (3, 2, 8, 8))
    from pseudosnn.simulator.engine import simulate

    np.testing.assert_array_equal(simulate(graph, x).output, simulate(back, x).output)
