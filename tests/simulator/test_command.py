"""`pseudosnn simulate` end to end: reports, sharding determinism, bad input."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from pseudosnn.compiler import artifact
from pseudosnn.compiler.testing import random_graph
from pseudosnn.simulator.datasets import DataError, open_dataset
from pseudosnn.simulator.engine import simulate
from pseudosnn.simulator.sharding import simulate_dataset

from pseudosnn.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def arts(tmp_path):
    a = artifact.save(random_graph("cnn", seed=1), tmp_path / "cnn")
    b = artifact.save(random_graph("residual", seed=2, per_channel=True), tmp_path / "res")
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.normal(size=(40, 2, 8, 8)), y=rng.integers(0, 5, 40))
    return a, b, data


def test_simulate_writes_consistent_reports(arts, tmp_path):
    a, b, data = arts
    out = tmp_path / "rep"
    r = CliRunner().invoke(main, ["simulate", str(a), str(b), "--data", f"npz:{data}",
                                  "--batch", "16", "--report", str(out), "--quiet",
                                  "--energy-model", "loihi", "--time-per-step-us", "2"])
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and "SOP/smp" in r.output
    for stem in ("cnn", "res"):
        for suffix in ("_layers.png", "_raster.png", "_spikes_per_step.png", "_energy.png"):
            assert (out / f"{stem}{suffix}").read_bytes()[:8] == PNG
        assert (out / f"{stem}.csv").read_text().startswith("layer,kind,coupling")
    assert (out / "accuracy_vs_energy.png").read_bytes()[:8] == PNG
    rep = json.loads((out / "res.json").read_text())
    g = artifact.load(b)
    z = np.load(data)
    direct = simulate(g, z["x"])
    assert rep["samples"] == 40
    assert rep["totals"]["sops_total"] == sum(direct.sops.values())
    assert rep["totals"]["encoder_macs_total"] == direct.macs
    pred = direct.output.argmax(1)
    assert rep["accuracy"] == pytest.approx(np.mean(pred == z["y"]))
    assert rep["latency_us"] == 2 * g.latency_steps
    by_layer = {row["layer"]: row for row in rep["layers"]}
    for name, n in direct.counts.items():
        assert by_layer[name]["spikes_total"] == int(n.sum())
    with np.load(out / "res_counts.npz") as z_counts:
        for name, n in direct.counts.items():
            np.testing.assert_array_equal(z_counts[f"spikes/{name}"], n.sum(0))
        np.testing.assert_array_equal(z_counts["output"], direct.output)
    assert len(json.loads((out / "summary.json").read_text())) == 2
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries


def test_sharded_equals_one_process_bit_for_bit(arts):
    a, _, data = arts
    g = artifact.load(a)
    z = np.load(data)
    one = simulate_dataset(g, z["x"], z["y"], batch_size=8, workers=1)
    two = simulate_dataset(g, z["x"], z["y"], batch_size=8, workers=2)
    assert one.samples == two.samples == 40
    assert one.output.tobytes() == two.output.tobytes()
    assert one.sops == two.sops and one.macs == two.macs
    assert one.neuron_updates == two.neuron_updates
    for k in one.spikes:
        assert np.array_equal(one.spikes[k], two.spikes[k])
        assert np.array_equal(one.spikes_per_step[k], two.spikes_per_step[k])
    assert one.accuracy == two.accuracy
    # and equal to a single batch of everything (counts are exact integers)
    whole = simulate(g, z["x"])
    for k, n in whole.counts.items():
        assert np.array_equal(one.spikes[k], n.sum(0))
    assert one.sops == whole.sops


def test_float32_precision_from_the_cli(arts, tmp_path):
    a, _, data = arts
    r = CliRunner().invoke(main, ["simulate", str(a), "--data", f"npz:{data}", "--quiet",
                                  "--precision", "float32", "--report", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r" / "cnn.json").read_text())
    assert rep["precision"] == "float32" and rep["samples"] == 40


def _run(args):
    return CliRunner().invoke(main, ["simulate", *args])


def test_bad_input_gives_clear_errors(arts, tmp_path):
    a, _, data = arts
    r = _run([str(a), "--data", f"npz:{data}", "--energy-model", "tpu"])
    assert r.exit_code != 0
    assert "unknown energy model 'tpu'" in r.output and "45nm" in r.output
    assert "loihi" in r.output and "Traceback" not in r.output
    for hops in ("-1", "nan", "inf"):
        r = _run([str(a), "--data", f"npz:{data}", "--mean-hops", hops])
        assert r.exit_code == 2 and "--mean-hops" in r.output, r.output
        assert ("range x>=0" in r.output or "not a finite number" in r.output) and \
            "Traceback" not in r.output, r.output
    chip = tmp_path / "chip.yaml"
    chip.write_text("base: 45nm\nadd_pj: -0.1\n")
    r = _run([str(a), "--data", f"npz:{data}", "--chip", str(chip)])
    assert r.exit_code == 1 and "'add_pj'" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1

    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((3, 3, 5, 5)))
    r = _run([str(a), "--data", f"npz:{wrong}"])
    assert r.exit_code != 0 and "(3, 5, 5)" in r.output and "expects (2, 8, 8)" in r.output

    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 2, 8, 8)))
    r = _run([str(a), "--data", f"npz:{empty}"])
    assert r.exit_code != 0 and "empty" in r.output

    manifest = a / "manifest.json"
    m = json.loads(manifest.read_text())
    m["format_version"] = 99
    manifest.write_text(json.dumps(m))
    r = _run([str(a), "--data", f"npz:{data}"])
    assert r.exit_code != 0 and "format 99" in r.output and "recompile" in r.output

    r = _run([str(tmp_path), "--data", f"npz:{data}"])
    assert r.exit_code != 0 and "not a compiled artifact" in r.output

    r = _run([str(arts[1]), "--data", "mnist"])
    assert r.exit_code != 0 and "digits, cifar10:PATH, cifar100:PATH" in r.output

    r = _run([str(arts[1]), "--data", f"npz:{data}", "--fixed-point"])
    assert r.exit_code != 0 and "float graph" in r.output


def test_cifar10_batch_loads_and_foreign_pickles_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    batch = {b"batch_label": b"testing batch 1 of 1",
             b"data": rng.integers(0, 256, size=(5, 3072), dtype=np.uint8),
             b"labels": [3, 1, 4, 1, 5], b"filenames": [b"a.png"] * 5}
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    ds = open_dataset(f"cifar10:{folder}", (3, 32, 32))
    assert ds.x.shape == (5, 3, 32, 32) and ds.y.tolist() == [3, 1, 4, 1, 5]
    raw = batch[b"data"].reshape(5, 3, 32, 32)[0, 0, 0, 0] / 255
    assert ds.x[0:1][0, 0, 0, 0] == pytest.approx((raw - 0.4914) / 0.2470, rel=1e-6)

    evil = tmp_path / "evil"
    with open(evil, "wb") as f:
        pickle.dump({b"data": subprocess.Popen}, f)
    with pytest.raises(DataError, match="refusing to load subprocess.Popen"):
        open_dataset(f"cifar10:{evil}", (3, 32, 32))
    with pytest.raises(DataError, match="test_batch"):
        open_dataset(f"cifar10:{tmp_path / 'missing'}", (3, 32, 32))


def test_cifar10_test_set_equals_the_trainers(tmp_path):
    from pseudosnn import data  # imports torch (this test may)

    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(4, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, 4).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=4)
    test = data.load_cifar(folder, 10, augment=False).test
    x_ref, y_ref = test.images, test.labels
    ds = open_dataset(f"cifar10:{folder}", (3, 32, 32))
    np.testing.assert_array_equal(ds.x[:], x_ref.numpy().astype(np.float64))
    np.testing.assert_array_equal(ds.y, y_ref.numpy())


def test_digits_test_split_equals_the_trainers():
    from pseudosnn import data  # imports torch (this test may)
    ds = open_dataset("digits", (1, 8, 8))
    test = data.load_digits_data().test
    x_ref, y_ref = test.tensors
    assert ds.x.shape == tuple(x_ref.shape) == (360, 1, 8, 8)
    np.testing.assert_array_equal(ds.x[:], x_ref.numpy().astype(np.float64))
    np.testing.assert_array_equal(ds.y, y_ref.numpy())


def test_simulator_and_numpy_backend_import_without_torch(tmp_path):
    code = """
import sys


class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")


sys.meta_path.insert(0, BlockTorch())
import numpy as np
from pseudosnn.simulator import engine, energy, sharding, datasets, plots, command
from pseudosnn.simulator.metrics import report, tally
from pseudosnn.backends.numpy_backend import NumpyBackend
from pseudosnn.compiler.testing import random_graph
g = random_graph("cnn")
r = NumpyBackend().run(g, np.ones((2, 2, 8, 8)))
datasets.open_dataset("digits", (1, 8, 8))
print("ok", sum(r.sops.values()) > 0, "torch" in sys.modules)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok True False"
