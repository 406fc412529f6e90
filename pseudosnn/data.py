"""Data sets from local paths (nothing is downloaded) and the usual augmentations.

On-disk layouts (``path`` is the ``data_path`` of a config):

* ``digits``: scikit-learn's bundled 8x8 digits, no path. 1 channel, pixel values
  ``/16`` then standardised with the training mean/std; a fixed stratified split of
  1437 training and 360 test images.
* ``cifar10``: the standard python-pickle batches ``data_batch_1`` ... ``data_batch_5``
  and ``test_batch`` (``batches.meta`` optional) in ``path`` (or in
  ``path/cifar-10-batches-py``).
* ``cifar100``: the pickles ``train`` and ``test`` (fine labels; ``meta`` optional) in
  ``path`` (or ``path/cifar-100-python``).
* ``imagenet``: ``path/train/<class>/<image>`` and ``path/val/<class>/<image>`` (any
  format PIL reads); classes are the sorted folder names.
* ``cifar10_dvs``: pre-integrated event frames, ``path/train/<class>/<sample>.npz`` and
  ``path/test/<class>/<sample>.npz``, each holding an array ``frames`` of shape
  ``[T, 2, H, W]`` (polarity channels, any numeric type); classes are sorted folder names.

Images are tensors ``[C, H, W]`` (event samples ``[T, 2, H, W]``), normalised per channel.
The layouts, the normalisation and the eval transform are defined once, torch-free, in
:mod:`pseudosnn.preprocessing` (the simulator's loaders use the same definitions).
Augmentations (training split only): random crop with zero padding, horizontal flip,
optional cutout; randomness comes from torch's global generator, so a seeded run is
reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from pseudosnn.preprocessing import (
    CIFAR,
    DVS_LAYOUT,
    IMAGE_EXTENSIONS,
    IMAGENET_LAYOUT,
    IMAGENET_RESIZE_RATIO,
    DataNotFound,
    cifar_batch,
    cifar_normalise,
    class_folder,
    digits_normalise,
    digits_split,
    imagenet_eval,
    imagenet_normalise,
    read_frames,
    resized_image,
)

DATASETS = ("digits", "cifar10", "cifar100", "imagenet", "cifar10_dvs")
__all__ = ["DATASETS", "DataBundle", "DataNotFound", "load_data"]


@dataclass
class DataBundle:
    train: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]


# --- augmentations (tensor [C, H, W] -> tensor) ------------------------------------
def random_crop(img: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the original size at a random offset."""
    if padding <= 0:
        return img
    h, w = img.shape[-2:]
    padded = torch.nn.functional.pad(img, (padding,) * 4)
    i, j = (int(v) for v in torch.randint(0, 2 * padding + 1, (2,)))
    return padded[..., i:i + h, j:j + w]


def random_hflip(img: torch.Tensor) -> torch.Tensor:
    return img.flip(-1) if torch.rand(()) < 0.5 else img


def cutout(img: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square at a random centre (clipped at the borders)."""
    if size <= 0:
        return img
    h, w = img.shape[-2:]
    cy, cx = (int(v) for v in (torch.randint(0, h, ()), torch.randint(0, w, ())))
    out = img.clone()
    out[..., max(cy - size // 2, 0):cy + (size + 1) // 2,
        max(cx - size // 2, 0):cx + (size + 1) // 2] = 0
    return out


def make_augment(crop_padding: int = 4, flip: bool = True, cutout_size: int = 0
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    def augment(img: torch.Tensor) -> torch.Tensor:
        img = random_crop(img, crop_padding)
        if flip:
            img = random_hflip(img)
        return cutout(img, cutout_size)
    return augment


class AugmentedTensors(Dataset):
    """In-memory images with an optional per-sample transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i]
        return (self.transform(img) if self.transform else img), self.labels[i]


# --- digits ----------------------------------------------------------------------------
def load_digits_data() -> DataBundle:
    """scikit-learn's 8x8 digits: 1437 train / 360 test, standardised, ``[1, 8, 8]``."""
    xtr, xte, ytr, yte = digits_split()
    def prep(a):
        return torch.from_numpy(digits_normalise(a))
    return DataBundle(TensorDataset(prep(xtr), torch.from_numpy(ytr)),
                      TensorDataset(prep(xte), torch.from_numpy(yte)),
                      (1, 8, 8), 10, [str(i) for i in range(10)])


# --- CIFAR pickles ---------------------------------------------------------------------
def _cifar_dir(path: Path, sub: str, required: list[str], layout: str) -> Path:
    for cand in (path, path / sub):
        if all((cand / r).is_file() for r in required):
            return cand
    raise DataNotFound(f"no CIFAR data at {path}: expected {layout} (the standard "
                       "python-pickle batches); set data_path to that folder")


def load_cifar(path: str | Path, num_classes: int, *, augment: bool = True,
               cutout_size: int = 0) -> DataBundle:
    """CIFAR-10 (``num_classes=10``) or CIFAR-100 (fine labels) from the pickle batches."""
    path = Path(path).expanduser()
    if num_classes not in CIFAR:
        raise ValueError(f"CIFAR has 10 or 100 classes, not {num_classes}")
    test_file, label_key, mean, std = CIFAR[num_classes]
    if num_classes == 10:
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        d = _cifar_dir(path, "cifar-10-batches-py", train_files + [test_file],
                       "data_batch_1..data_batch_5 and test_batch")
        meta, names_key = "batches.meta", b"label_names"
    else:
        d = _cifar_dir(path, "cifar-100-python", ["train", test_file], "files train and test")
        train_files, meta, names_key = ["train"], "meta", b"fine_label_names"

    def read(files):
        batches = [cifar_batch(d / f, label_key) for f in files]
        x = np.concatenate([cifar_normalise(b[0], mean, std) for b in batches])
        return torch.from_numpy(x), torch.from_numpy(np.concatenate([b[1] for b in batches]))

    names = [str(i) for i in range(num_classes)]
    if (d / meta).is_file():
        from pseudosnn.preprocessing import load_pickle_arrays

        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in load_pickle_arrays(d / meta)[names_key]]
    xtr, ytr = read(train_files)
    xte, yte = read([test_file])
    tf = make_augment(4, True, cutout_size) if augment else None
    return DataBundle(AugmentedTensors(xtr, ytr, tf), AugmentedTensors(xte, yte),
                      (3, 32, 32), num_classes, names)


# --- class folders (ImageNet images, DVS frames) ---------------------------------------
class ImageFolder(Dataset):
    """``root/<split>/<class>/<image>``: resize the shorter side to ``resize``, crop
    ``size`` (random + flip for training, centre otherwise), normalise."""

    def __init__(self, items: list[tuple[Path, int]], size: int, resize: int, train: bool):
        self.items, self.size, self.resize, self.train = items, size, resize, train

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        if not self.train:  # the eval transform (preprocessing.imagenet_eval)
            return torch.from_numpy(imagenet_eval(path, self.size)), label
        x = torch.from_numpy(resized_image(path, self.size, self.resize))
        h, w = x.shape[1:]
        top = int(torch.randint(0, h - self.size + 1, ()))
        left = int(torch.randint(0, w - self.size + 1, ()))
        x = random_hflip(x[:, top:top + self.size, left:left + self.size])
        return torch.from_numpy(imagenet_normalise(x.numpy())), label


def load_imagenet(path: str | Path, *, image_size: int = 224, resize: int | None = None,
                  augment: bool = True) -> DataBundle:
    root = Path(path).expanduser()
    train, classes = class_folder(root / "train", IMAGE_EXTENSIONS, IMAGENET_LAYOUT)
    val, _ = class_folder(root / "val", IMAGE_EXTENSIONS, IMAGENET_LAYOUT)
    resize = resize or round(image_size * IMAGENET_RESIZE_RATIO)
    return DataBundle(ImageFolder(train, image_size, resize, augment),
                      ImageFolder(val, image_size, resize, False),
                      (3, image_size, image_size), len(classes), classes)


class FrameFolder(Dataset):
    """``.npz`` files with ``frames [T, 2, H, W]``; training: random crop + flip."""

    def __init__(self, items: list[tuple[Path, int]], augment: bool):
        self.items, self.augment = items, augment

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        x = torch.from_numpy(read_frames(path))
        if self.augment:
            x = random_hflip(random_crop(x, 4))
        return x, label


def load_dvs_frames(path: str | Path, *, augment: bool = True) -> DataBundle:
    root = Path(path).expanduser()
    train, classes = class_folder(root / "train", (".npz",), DVS_LAYOUT)
    test, _ = class_folder(root / "test", (".npz",), DVS_LAYOUT)
    first = FrameFolder(train[:1], False)[0][0]
    return DataBundle(FrameFolder(train, augment), FrameFolder(test, False),
                      tuple(first.shape), len(classes), classes)


def load_data(name: str, path: str | Path | None = None, *, augment: bool = True,
              cutout_size: int = 0, image_size: int = 224) -> DataBundle:
    """Load data set ``name`` (one of ``DATASETS``) from ``path``."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits_data()
    if path is None:
        raise DataNotFound(f"data set {name!r} needs data_path (see pseudosnn.data for the "
                           "expected layout)")
    if not Path(path).expanduser().exists():
        layout = {"cifar10": "data_batch_1..5 and test_batch",
                  "cifar100": "train and test pickles", "imagenet": IMAGENET_LAYOUT,
                  "cifar10_dvs": DVS_LAYOUT}[name]
        raise DataNotFound(f"data path {path} does not exist: {name} expects {layout}")
    if name in ("cifar10", "cifar100"):
        return load_cifar(path, 10 if name == "cifar10" else 100, augment=augment,
                          cutout_size=cutout_size)
    if name == "imagenet":
        return load_imagenet(path, image_size=image_size, augment=augment)
    return load_dvs_frames(path, augment=augment)
