"""Batches across threads, processes and a Ray cluster (issue 14): the same counts and
outputs, bit for bit, whatever runs them."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from pseudosnn.compiler import artifact
from pseudosnn.compiler.testing import random_graph
from pseudosnn.simulator.engine import simulate
from pseudosnn.simulator.sharding import parse_cluster, simulate_dataset
from pseudosnn.simulator.threads import ThreadsError, cores, resolve

from pseudosnn.cli import main
from pseudosnn.errors import UsageError


def _same(a, b) -> None:
    assert a.samples == b.samples
    assert a.output.tobytes() == b.output.tobytes()
    assert a.sops == b.sops and a.macs == b.macs and a.neuron_updates == b.neuron_updates
    for k in a.spikes:
        assert np.array_equal(a.spikes[k], b.spikes[k])
        assert np.array_equal(a.spikes_per_step[k], b.spikes_per_step[k])


@pytest.mark.parametrize("kind", ["cnn", "residual"])
@pytest.mark.parametrize("precision", ["float64", "float32", "fixed"])
def test_thread_count_does_not_change_a_bit(kind, precision):
    from pseudosnn.compiler.quantize import quantize

    g = random_graph(kind, seed=3, per_channel=True)
    if precision == "fixed":
        g, precision = quantize(g)[0], "float64"
    x = np.random.default_rng(1).normal(size=(12, *g.input.shape))
    one, two = simulate(g, x, precision=precision, threads=1), \
        simulate(g, x, precision=precision, threads=2)
    assert one.output.tobytes() == two.output.tobytes()
    for k in one.counts:
        assert np.array_equal(one.counts[k], two.counts[k])


def test_thread_and_cluster_specs():
    assert resolve(None) == resolve(0) == cores() and resolve(3) == 3
    with pytest.raises(ThreadsError, match="--threads"):
        resolve(-1)
    assert parse_cluster(None) is None and parse_cluster("ray") == ""
    assert parse_cluster("ray:ray://head:10001") == "ray://head:10001"
    for bad in ("spark", "ray:", "dask:x"):
        with pytest.raises(UsageError, match="ray:ADDRESS"):
            parse_cluster(bad)


@pytest.fixture
def data(tmp_path):
    g = random_graph("residual", seed=2, per_channel=True)
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.normal(size=(36, *g.input.shape)), y=rng.integers(0, 5, 36))
    return g, artifact.save(g, tmp_path / "res"), path


@pytest.mark.slow
def test_ray_with_two_local_workers_equals_one_process(data, monkeypatch):
    """A local Ray instance with 2 workers: every batch a task, merged in order, exactly."""
    ray = pytest.importorskip("ray")
    g, _, path = data
    z = np.load(path)
    inits = []
    real_init = ray.init
    monkeypatch.setattr(ray, "init", lambda **kw: inits.append(kw) or real_init(**kw))
    seen = []
    one = simulate_dataset(g, z["x"], z["y"], batch_size=8)
    on_ray = simulate_dataset(g, z["x"], z["y"], batch_size=8, workers=2, cluster="ray",
                              on_batch=seen.append)
    assert [kw["num_cpus"] for kw in inits] == [2] and not ray.is_initialized()
    assert seen == [8, 8, 8, 8, 4]  # progress after every batch, in batch order
    _same(one, on_ray)
    assert one.accuracy == on_ray.accuracy


@pytest.mark.slow
def test_simulate_command_on_ray(data, tmp_path):
    pytest.importorskip("ray")
    _, art, path = data
    runs = {}
    for name, extra in (("one", []), ("ray", ["--cluster", "ray", "--workers", "2"])):
        out = tmp_path / name
        r = CliRunner().invoke(main, ["simulate", str(art), "--data", f"npz:{path}", "--batch",
                                      "8", "--quiet", "--report", str(out), *extra])
        assert r.exit_code == 0, r.output
        with np.load(out / "res_counts.npz") as z:
            runs[name] = {k: z[k] for k in z.files}
    assert runs["one"].keys() == runs["ray"].keys()
    for k in runs["one"]:
        assert np.array_equal(runs["one"][k], runs["ray"][k]), k


def test_bad_cluster_or_threads_is_one_line(data):
    _, art, path = data
    for args, what in ((["--cluster", "spark"], "ray:ADDRESS"), (["--threads", "-2"], "-2")):
        r = CliRunner().invoke(main, ["simulate", str(art), "--data", f"npz:{path}", "--quiet",
                                      *args])
        assert r.exit_code == 2 and what in r.output and "Traceback" not in r.output
