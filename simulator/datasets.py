"""Torch-free evaluation inputs for the simulator: ``digits``, ``cifar10:PATH``, ``npz:PATH``.

``digits``: scikit-learn's bundled 8x8 digits, the *test* split of ``pseudosnn/data.py``
(same split, same normalisation; see the constants below).
``cifar10:PATH``: the standard python-pickle ``test_batch`` (a file, or a directory that
holds it, e.g. ``cifar-10-batches-py``), scaled to ``[0, 1]`` then normalised with the
usual CIFAR-10 channel mean/std. ``npz:PATH``: arrays ``x`` (and optionally ``y``) used
as they are.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pseudosnn.errors import PseudoSNNError

# The digits split and normalisation of pseudosnn/data.py (``load_digits_data``), which
# imports torch at module level and so cannot be imported here; a test checks that both
# give the same test set, value for value.
DIGITS_MAX_VALUE = 16.0
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # the usual CIFAR-10 channel statistics, as in
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # pseudosnn/data.py (a test checks they agree)


class DataError(PseudoSNNError, ValueError):
    """A data set could not be loaded; the message names the expected format."""


@dataclass
class Dataset:
    name: str
    x: np.ndarray  # (N, *sample_shape) float64
    y: np.ndarray | None  # (N,) int64


def load_digits_test() -> Dataset:
    """The 360-sample stratified test split, ``x/16`` standardised with the *training*
    split's mean and std (computed in float32 like the trainer), shape ``(N, 1, 8, 8)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32) / np.float32(DIGITS_MAX_VALUE)
    x_train, x_test, _, y_test = train_test_split(
        x, d.target, test_size=DIGITS_TEST_SIZE, random_state=DIGITS_SPLIT_SEED,
        stratify=d.target)
    mean, std = x_train.mean(), x_train.std()
    x_test = ((x_test - mean) / std).astype(np.float64)[:, None]
    return Dataset("digits", x_test, y_test.astype(np.int64))


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """The CIFAR-10 batches are pickles of a dict of numpy arrays, lists, bytes and ints.
    Unpickling may run arbitrary code, so only numpy's array reconstruction (and the
    pure ``_codecs.encode``) may be called."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
               "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # protocol-2 pickles written by Python 3 wrap bytes

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a CIFAR-10 batch holds only numpy arrays "
            "(this file is not the standard python-pickle test_batch)")


def load_cifar10_test(path: str | Path) -> Dataset:
    p = Path(path)
    if p.is_dir():
        p = p / "test_batch"
    if not p.is_file():
        raise DataError(f"CIFAR-10 test batch not found at {p}; pass cifar10:PATH with PATH the "
                        "python-pickle 'test_batch' file or the 'cifar-10-batches-py' folder")
    with open(p, "rb") as f:
        try:
            batch = _ArrayOnlyUnpickler(f, encoding="bytes").load()
        except pickle.UnpicklingError as exc:
            raise DataError(f"{p}: {exc}") from exc
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{p} is not a CIFAR-10 python batch (needs b'data' of N x 3072 "
                        f"uint8 and b'labels'): {exc}") from exc
    # float32 like pseudosnn/data.py (so the values equal the trainer's, bit for bit)
    x = data.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(CIFAR10_MEAN, np.float32)[:, None, None]
    std = np.asarray(CIFAR10_STD, np.float32)[:, None, None]
    return Dataset("cifar10", ((x - mean) / std).astype(np.float64), labels)


def load_npz(path: str | Path) -> Dataset:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"npz file not found: {p}; pass npz:PATH to a file with arrays x "
                        "(N, *input_shape) and optionally y (N,)")
    with np.load(p, allow_pickle=False) as z:
        if "x" not in z.files:
            raise DataError(f"{p} has arrays {z.files} but no 'x'; save the inputs as x "
                            "(and labels as y)")
        x = np.asarray(z["x"], dtype=np.float64)
        y = np.asarray(z["y"], dtype=np.int64).reshape(-1) if "y" in z.files else None
    if y is not None and y.shape[0] != x.shape[0]:
        raise DataError(f"{p}: x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    return Dataset(p.stem, x, y)


def load_dataset(spec: str) -> Dataset:
    """``digits`` | ``cifar10:PATH`` | ``npz:PATH``."""
    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        ds = load_digits_test()
    elif kind == "cifar10" and path:
        ds = load_cifar10_test(path)
    elif kind == "npz" and path:
        ds = load_npz(path)
    else:
        raise DataError(f"unknown data spec {spec!r}; use digits, cifar10:PATH or npz:PATH")
    if ds.x.shape[0] == 0:
        raise DataError(f"the data set {spec!r} is empty (0 samples); nothing to simulate")
    return ds


def fit_to_input(x: np.ndarray, input_shape: tuple[int, ...], spec: str) -> np.ndarray:
    """Reshape samples to the network's input shape when only the layout differs
    (e.g. 1x8x8 digits into a 64-input MLP); otherwise a clear error."""
    sample = tuple(x.shape[1:])
    if sample == tuple(input_shape):
        return x
    if int(np.prod(sample)) == int(np.prod(input_shape)):
        return x.reshape(x.shape[0], *input_shape)
    raise DataError(f"data {spec!r} has samples of shape {sample}, the network expects "
                    f"{tuple(input_shape)}; simulate it on data of that shape")


def check_labels(y: np.ndarray | None, classes: int, spec: str) -> None:
    """Labels must be class indices of the network's readout (``0..classes-1``): an
    accuracy against labels outside that range would be silently wrong."""
    if y is None or y.size == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= classes:
        raise DataError(f"data {spec!r} has labels in [{lo}, {hi}], the network has {classes} "
                        f"classes (labels 0..{classes - 1}); fix the labels (array y) or "
                        "leave them out")
