"""The simulator's data loaders on tiny files written in each real format: they read what
the trainer reads (same preprocessing, value for value), lazily and batch by batch, and
every bad input ends in one line naming the fix (a table of CLI cases)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from click.testing import CliRunner
from pseudosnn.compiler import artifact
from pseudosnn.compiler.testing import random_graph
from pseudosnn.simulator.datasets import DataError, Samples, open_dataset
from pseudosnn.simulator.sharding import simulate_dataset

from pseudosnn.cli import main
from pseudosnn.preprocessing import FileArray, cifar_batch

RNG = np.random.default_rng(0)


def write_cifar(folder, classes: int, n: int = 5, protocol: int = 2):
    """The python-pickle batches of CIFAR-10 (``data_batch_1..5``, ``test_batch``) or
    CIFAR-100 (``train``, ``test``, fine labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if classes == 10 \
        else ["train", "test"]
    key = b"labels" if classes == 10 else b"fine_labels"
    for name in files:
        batch = {b"batch_label": b"a batch", key: RNG.integers(0, classes, n).tolist(),
                 b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))


def python2_pickle(obj) -> bytes:
    """``obj`` pickled as Python 2's cPickle writes the real CIFAR files: raw bytes as
    ``BINSTRING`` (protocol 3 writes them as ``BINBYTES``; both have a 4-byte length)."""
    import pickletools

    data = pickle.dumps(obj, protocol=3)
    out = bytearray(data)
    for op, _, pos in pickletools.genops(data):
        if op.name == "BINBYTES":
            out[pos] = ord("T")
    return bytes(out)


def write_images(root, n: int = 2):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                arr = RNG.integers(0, 256, (40 + 6 * i, 50, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{i}.png")


def write_frames(root, frames: int = 4, n: int = 2, size: int = 12):
    for split in ("train", "test"):
        for cls in ("airplane", "cat"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                np.savez(root / split / cls / f"{i}.npz",
                         frames=RNG.integers(0, 5, (frames, 2, size, size)).astype(np.uint8))


@pytest.mark.parametrize("name,write,sample_shape,spec_of", [
    ("cifar10", lambda p: write_cifar(p / "cifar-10-batches-py", 10), (3, 32, 32),
     lambda p: f"cifar10:{p / 'cifar-10-batches-py'}"),
    ("cifar100", lambda p: write_cifar(p, 100), (3, 32, 32), lambda p: f"cifar100:{p}"),
    ("imagenet", write_images, (3, 32, 32), lambda p: f"imagenet:{p}"),
    ("cifar10_dvs", write_frames, (4, 2, 12, 12), lambda p: f"cifar10_dvs:{p}"),
])
def test_every_format_reads_what_the_trainer_evaluates(tmp_path, name, write, sample_shape,
                                                       spec_of):
    import torch

    from pseudosnn.data import load_data

    write(tmp_path)
    test = load_data(name, tmp_path, augment=False, image_size=32).test
    want = np.stack([np.asarray(test[i][0]) for i in range(len(test))])
    labels = [int(test[i][1]) for i in range(len(test))]
    source = open_dataset(spec_of(tmp_path), sample_shape)
    assert isinstance(source.x, Samples) and len(source.x) == len(test)
    got = np.concatenate([source.x[a:a + 3] for a in range(0, len(test), 3)])
    np.testing.assert_array_equal(got, want.astype(np.float64))
    assert source.y.tolist() == labels and source.warning is None
    assert torch.is_tensor(test[0][0])


@pytest.mark.parametrize("python2", [True, False])
def test_cifar_pixels_stay_in_the_file(tmp_path, python2):
    pixels = RNG.integers(0, 256, (7, 3072), dtype=np.uint8)
    path = tmp_path / "test_batch"
    batch = {b"batch_label": b"testing batch", b"labels": list(range(7)), b"data": pixels}
    path.write_bytes(python2_pickle(batch) if python2 else pickle.dumps(batch, protocol=4))
    x, y = cifar_batch(path, b"labels")
    assert isinstance(x, FileArray) and y.tolist() == list(range(7))
    np.testing.assert_array_equal(x[2:5].reshape(3, -1), pixels[2:5])
    np.testing.assert_array_equal(np.asarray(x).reshape(7, -1), pixels)


def test_simulating_reads_one_batch_at_a_time():
    """The data are never read whole: every read is one batch, in order."""
    graph = random_graph("cnn", seed=1)
    data = RNG.normal(0, 1, (50, *graph.input.sample_shape))
    reads = []

    def read(a, b):
        reads.append((a, b))
        return data[a:b]

    tally = simulate_dataset(graph, Samples(50, data.shape[1:], read), batch_size=16)
    assert reads == [(0, 16), (16, 32), (32, 48), (48, 50)] and tally.samples == 50


def test_npz_compressed_and_stored_read_alike(tmp_path):
    x = RNG.normal(0, 1, (40, 2, 8, 8)).astype(np.float32)
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "d.npz", x=x, y=np.arange(40) % 5)
        source = open_dataset(f"npz:{tmp_path / 'd.npz'}", (2, 8, 8))
        got = np.concatenate([source.x[a:a + 16] for a in range(0, 40, 16)])
        np.testing.assert_array_equal(got, x)
        assert source.y.tolist() == (np.arange(40) % 5).tolist()
    with pytest.raises(DataError, match="expects"):
        open_dataset(f"npz:{tmp_path / 'd.npz'}", (1, 16, 8))


# --- bad input, through the CLI: one line naming the problem and the fix -----------------
@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("arts")
    return {"image": artifact.save(random_graph("cnn", seed=1), root / "image"),
            "frames": artifact.save(random_graph("cnn", seed=2, frames=4, stream=True),
                                    root / "frames")}


def _npz(**arrays):
    def write(p):
        np.savez(p / "d.npz", **arrays)
        return f"npz:{p / 'd.npz'}"
    return write


def _garbage(p):
    (p / "d.npz").write_bytes(RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    return f"npz:{p / 'd.npz'}"


def _objects(p):
    x = np.empty(3, dtype=object)
    x[:] = [1, "two", None]
    np.savez(p / "d.npz", x=x)
    return f"npz:{p / 'd.npz'}"


def _flat_images(p):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p / "a.png")  # no class folders
    return f"imagenet:{p}"


def _frames(count):
    def write(p):
        write_frames(p, frames=count, size=8)
        return f"cifar10_dvs:{p}"
    return write


IMAGES = RNG.normal(0, 1, (6, 2, 8, 8))
BAD_INPUT = [  # (case, artifact, writer -> spec, extra args, exit code, expected in output)
    ("npz of another shape", "image", _npz(x=np.zeros((3, 4, 4, 4))), [], 1,
     "has samples of shape (4, 4, 4), the network expects (2, 8, 8)"),
    ("npz channels last", "image", _npz(x=IMAGES.transpose(0, 2, 3, 1)), [], 1,
     "if the arrays are channels-last, pass --layout HWC"),
    ("npz channels last, --layout HWC", "image", _npz(x=IMAGES.transpose(0, 2, 3, 1)),
     ["--layout", "HWC"], 0, "6 samples"),
    ("npz flat, --layout flat", "image", _npz(x=IMAGES.reshape(6, -1)), ["--layout", "flat"],
     0, "6 samples"),
    ("npz flat", "image", _npz(x=IMAGES.reshape(6, -1)), [], 1, "pass --layout flat"),
    ("npz un-normalised", "image", _npz(x=np.abs(IMAGES) * 255, y=np.arange(6) % 5), [], 0,
     "far from the training normalisation"),
    ("npz of garbage bytes", "image", _garbage, [], 1, "is not a readable .npz file"),
    ("npz of strings", "image", _npz(x=np.array([["a", "b"]] * 3)), [], 1,
     "holds <U1 values (text?), not numbers"),
    ("npz of Python objects", "image", _objects, [], 1, "holds Python objects"),
    ("npz labels out of range", "image", _npz(x=IMAGES, y=np.arange(6) * 3), [], 1,
     "labels in [0, 15], the network has 5 classes"),
    ("npz labels not integers", "image", _npz(x=IMAGES, y=np.full(6, 0.5)), [], 1,
     "y must be N = 6 integer labels"),
    ("--layout on another format", "image", lambda p: "digits", ["--layout", "HWC"], 1,
     "--layout applies to npz data only"),
    ("images without class folders", "image", _flat_images, [], 1,
     "no samples under"),
    ("frames of another count", "frames", _frames(6), [], 1,
     "reads 4 event frames per sample, the data have 6: re-bin the events into 4 frames"),
    ("frames into an image network", "image", _frames(4), [], 1,
     "the data are event frames (T, C, H, W), the network reads one sample"),
    ("images into a frame network", "frames", _npz(x=IMAGES), [], 1,
     "the network reads event frames (T, C, H, W)"),
]


@pytest.mark.parametrize("case,art,write,args,code,expected", BAD_INPUT,
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_data_gives_one_line_naming_the_fix(tmp_path, artifacts, case, art, write, args,
                                                code, expected):
    spec = write(tmp_path)
    res = CliRunner().invoke(main, ["simulate", str(artifacts[art]), "--data", spec,
                                    "--quiet", *args])
    assert res.exit_code == code, res.output
    assert expected in res.output, res.output
    assert "Traceback" not in res.output
    if code:
        (line,) = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
        assert expected in line
