"""Data loaders on tiny files written in the real formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from pseudosnn.data import (
    DataNotFound,
    cutout,
    load_data,
    load_digits_data,
    random_crop,
    random_hflip,
)
from pseudosnn.preprocessing import DataError


def test_digits_split_is_fixed_and_normalised():
    a, b = load_digits_data(), load_digits_data()
    assert (len(a.train), len(a.test)) == (1437, 360)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    xa, ya = a.train.tensors
    assert torch.equal(xa, b.train.tensors[0]) and torch.equal(ya, b.train.tensors[1])
    assert abs(float(xa.mean())) < 1e-4 and abs(float(xa.std()) - 1) < 1e-2
    assert sorted(set(a.test.tensors[1].tolist())) == list(range(10))


def write_cifar10(root, n=4):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, n))}
        (root / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta))


def test_cifar10_pickles(tmp_path):
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    write_cifar10(sub)
    d = load_data("cifar10", tmp_path, cutout_size=8)
    assert (len(d.train), len(d.test)) == (20, 4)
    assert d.class_names[3] == "c3" and d.input_shape == (3, 32, 32)
    x, y = d.train[0]
    assert x.shape == (3, 32, 32) and 0 <= int(y) < 10
    # the test split is unaugmented and equals the normalised raw pixels
    raw = pickle.loads((sub / "test_batch").read_bytes())[b"data"][0].reshape(3, 32, 32)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)
    expect = (torch.from_numpy(raw).float() / 255 - mean) / std
    assert torch.allclose(d.test[0][0], expect)


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in (("train", 6), ("test", 3)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": [99] * n, b"coarse_labels": [1] * n}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    d = load_data("cifar100", tmp_path, augment=False)
    assert d.num_classes == 100 and (len(d.train), len(d.test)) == (6, 3)
    assert int(d.train[2][1]) == 99


def test_cifar_pickle_with_code_is_refused(tmp_path):
    write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="refusing"):
        load_data("cifar10", tmp_path)


def test_imagenet_folders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                arr = rng.integers(0, 256, (40 + 8 * i, 50, 3), dtype=np.uint8)
                Image.fromarray(arr).save(tmp_path / split / cls / f"{i}.png")
    d = load_data("imagenet", tmp_path, image_size=32)
    assert d.class_names == ["n01", "n02"] and d.num_classes == 2
    assert (len(d.train), len(d.test)) == (4, 4)
    x, y = d.train[3]
    assert x.shape == (3, 32, 32) and y == 1
    assert d.test[0][0].shape == (3, 32, 32)


def test_dvs_frames(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("airplane", "cat"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                frames = np.random.default_rng(i).integers(0, 5, (4, 2, 12, 12))
                np.savez(tmp_path / split / cls / f"{i}.npz", frames=frames.astype(np.uint8))
    d = load_data("cifar10_dvs", tmp_path)
    assert d.input_shape == (4, 2, 12, 12) and d.class_names == ["airplane", "cat"]
    assert (len(d.train), len(d.test)) == (6, 4)
    assert d.train[5][0].shape == (4, 2, 12, 12)
    np.savez(tmp_path / "test" / "cat" / "9.npz", wrong=np.zeros(3))
    with pytest.raises(DataError, match="frames"):
        load_data("cifar10_dvs", tmp_path).test[4]


@pytest.mark.parametrize("name, match", [
    ("cifar10", "data_batch_1"), ("cifar100", "train and test"),
    ("imagenet", "train/<class>"), ("cifar10_dvs", "npz"),
])
def test_missing_paths_name_the_layout(tmp_path, name, match):
    with pytest.raises(DataNotFound, match=match):
        load_data(name, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFound, match=match):
        load_data(name, tmp_path / "empty")


def test_augmentations():
    torch.manual_seed(0)
    img = torch.arange(2 * 6 * 6, dtype=torch.float32).view(2, 6, 6) + 1
    crops = {tuple(random_crop(img, 2)[0, 0, :2].tolist()) for _ in range(50)}
    assert len(crops) > 3
    out = random_crop(img, 2)
    assert out.shape == img.shape
    flips = [torch.equal(random_hflip(img), img.flip(-1)) for _ in range(40)]
    assert 5 < sum(flips) < 35
    cut = cutout(img, 3)
    assert (cut == 0).sum() >= 2 * 4  # at least a clipped 2x2 square per channel
