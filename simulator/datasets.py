"""Torch-free evaluation inputs, read lazily batch by batch (memory does not grow with the
data set), preprocessed exactly as the trainer does (:mod:`pseudosnn.preprocessing`).

Specs (``--data``):

* ``digits``: scikit-learn's 8x8 digits, the test split of ``pseudosnn/data.py``;
* ``cifar10:PATH`` / ``cifar100:PATH``: the python-pickle test batch (``test_batch`` /
  ``test``, or a folder holding it), its pixels read from the file slice by slice;
* ``imagenet:PATH``: class folders of images (``PATH/val/<class>/<image>`` or
  ``PATH/<class>/<image>``), the eval transform at the network's input size;
* ``cifar10_dvs:PATH``: class folders of ``.npz`` event frames (``PATH/test/<class>/`` or
  ``PATH/<class>/``), ``frames [T, 2, H, W]``, one sample per file;
* ``npz:PATH``: arrays ``x`` (N, *sample) and optionally ``y`` (N,); ``x`` is read in
  place, slice by slice (streamed, if compressed). It must have the network's input shape
  exactly, or ``layout="HWC"`` (channels last) / ``"flat"`` (any shape of that size, C
  order); its statistics are checked against a training normalisation.

:func:`open_dataset` returns a :class:`DataSource`: ``x`` is a :class:`Samples` (``len``,
``x[a:b]`` reads and preprocesses only those samples), ``y`` the labels.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pseudosnn.preprocessing import (
    CIFAR,
    IMAGE_EXTENSIONS,
    DataError,
    FileArray,
    cifar_batch,
    cifar_normalise,
    class_folder,
    digits_normalise,
    digits_split,
    imagenet_eval,
    read_frames,
)

SPECS = ("digits", "cifar10:PATH", "cifar100:PATH", "imagenet:PATH", "cifar10_dvs:PATH",
         "npz:PATH")
LAYOUTS = ("CHW", "HWC", "flat")
STATS_SAMPLES = 256
"""Samples the statistics check of ``npz`` data reads (the first ones)."""
NORMALISED_MEAN_MAX, NORMALISED_STD_RANGE = 1.0, (0.3, 3.0)
"""Per-channel statistics of normalised inputs (every trainer's data set is standardised
to mean 0, std 1 per channel): outside these the data are very likely not normalised
(raw ``[0, 255]`` pixels: mean ~120; ``[0, 1]`` pixels: std ~0.25)."""

__all__ = ["DataError", "DataSource", "Dataset", "Samples", "load_digits_test",
           "open_dataset", "fit_to_input"]


@dataclass
class Dataset:
    """A small data set in memory (digits)."""

    name: str
    x: np.ndarray  # (N, *sample_shape) float64
    y: np.ndarray | None  # (N,) int64


class Samples:
    """A lazy, array-like view of a data set's inputs: ``len``, ``shape``, and ``x[a:b]``
    (a float64 batch read and preprocessed on demand)."""

    def __init__(self, n: int, sample_shape: tuple[int, ...],
                 read: Callable[[int, int], np.ndarray]):
        self.n, self.sample_shape, self._read = int(n), tuple(sample_shape), read

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, *self.sample_shape)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self[int(key):int(key) + 1][0]
        a, b, step = key.indices(self.n) if isinstance(key, slice) else (None, None, None)
        if step != 1:
            raise TypeError("Samples are read in contiguous slices x[a:b]")
        return np.asarray(self._read(a, max(a, b)), dtype=np.float64)

    def head(self, n: int) -> Samples:
        return Samples(min(n, self.n), self.sample_shape, self._read)


@dataclass
class DataSource:
    """Inputs shaped for the network, read lazily; labels; a warning about the data's
    statistics (``npz`` only) or None."""

    spec: str
    x: Samples
    y: np.ndarray | None
    warning: str | None = None

    def head(self, n: int | None) -> DataSource:
        if n is None:
            return self
        if n < 1:
            raise DataError(f"the number of samples must be >= 1, got {n}")
        return replace(self, x=self.x.head(n), y=None if self.y is None else self.y[:n])


# --- the data sets ------------------------------------------------------------------------
def load_digits_test() -> Dataset:
    """The 360-sample stratified test split, normalised as the trainer does (``(N, 1, 8, 8)``)."""
    _, x_test, _, y_test = digits_split()
    return Dataset("digits", digits_normalise(x_test).astype(np.float64),
                   y_test.astype(np.int64))


def _in_memory(x: np.ndarray) -> tuple[int, tuple, Callable]:
    return len(x), x.shape[1:], lambda a, b: x[a:b]


def _cifar(path: Path, classes: int) -> tuple[tuple, np.ndarray]:
    name, label_key, mean, std = CIFAR[classes]
    folder = {10: "cifar-10-batches-py", 100: "cifar-100-python"}[classes]
    files = [path / name, path / folder / name] if path.is_dir() else [path]
    file = next((f for f in files if f.is_file()), None)
    if file is None:
        raise DataError(f"CIFAR-{classes} test batch not found at {path}; pass "
                        f"cifar{classes}:PATH with PATH the python-pickle {name!r} file or the "
                        f"{folder!r} folder")
    pixels, labels = cifar_batch(file, label_key)
    return (len(pixels), pixels.shape[1:],
            lambda a, b: cifar_normalise(pixels[a:b], mean, std)), labels


def _folders(path: Path, split: str, suffixes: tuple[str, ...], layout: str):
    """``PATH/<split>/<class>/<file>`` (the trainer's layout) or ``PATH/<class>/<file>``."""
    root = path / split if (path / split).is_dir() else path
    try:
        return class_folder(root, suffixes, layout)[0]
    except DataError as exc:
        raise DataError(f"{exc}; for --data pass PATH/{split} or a folder of class folders"
                        ) from None


def _imagenet(path: Path, sample_shape: tuple[int, ...]):
    items = _folders(path, "val", IMAGE_EXTENSIONS, "<class>/<image> folders of images")
    if len(sample_shape) != 3 or sample_shape[0] != 3 or sample_shape[1] != sample_shape[2]:
        raise DataError(f"imagenet data gives square RGB images (3, S, S); the network "
                        f"expects {tuple(sample_shape)}")
    size = int(sample_shape[1])
    return ((len(items), (3, size, size),
             lambda a, b: np.stack([imagenet_eval(p, size) for p, _ in items[a:b]])),
            np.array([c for _, c in items], np.int64))


def _dvs(path: Path):
    items = _folders(path, "test", (".npz",), "<class>/<sample>.npz folders of event frames")
    first = read_frames(items[0][0]).shape

    def read(a, b):
        frames = [read_frames(p) for p, _ in items[a:b]]
        bad = next((f.shape for f in frames if f.shape != first), None)
        if bad is not None:
            raise DataError(f"{path}: samples have frames of shape {first} and {bad}; every "
                            "sample needs the same number of frames")
        return np.stack(frames)
    return (len(items), first, read), np.array([c for _, c in items], np.int64)


def _npz_array(path: Path, key: str):
    """``(n, sample shape, read)`` of array ``key`` of an ``.npz`` file, never loaded
    whole: read in place when stored (a :class:`FileArray`), streamed when compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            header = f.tell()
    _check_dtype(dtype, path, key)
    if fortran or not shape:
        raise DataError(f"{path}: {key} must be a C-ordered array (N, ...), got shape {shape}")
    row = int(np.prod(shape[1:])) * dtype.itemsize
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as f:  # the member's data start after its local header
            f.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(f.read(4), "<u2")
        offset = info.header_offset + 30 + int(name_len) + int(extra_len) + header
        rows = FileArray(path, dtype, shape, offset)
        return shape[0], shape[1:], lambda a, b: rows[a:b]

    stream: dict = {}  # compressed: one decompressing stream, read on in batch order

    def read(a, b):
        if stream.get("row") != a:  # (re)open and skip to row a; kept open to read on
            stream["file"] = zipfile.ZipFile(path).open(info)  # noqa: SIM115
            stream["file"].seek(header + a * row)
        data = stream["file"].read((b - a) * row)
        stream["row"] = b
        return np.frombuffer(data, dtype=dtype).reshape(b - a, *shape[1:])
    return shape[0], shape[1:], read


def _check_dtype(dtype: np.dtype, path: Path, key: str) -> None:
    if dtype.hasobject:
        raise DataError(f"{path}: {key} holds Python objects (dtype object); save numbers, "
                        "e.g. numpy.savez(PATH, x=x.astype('float32'), y=y)")
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise DataError(f"{path}: {key} holds {dtype} values (text?), not numbers; save "
                        "numeric arrays, e.g. numpy.savez(PATH, x=x.astype('float32'), y=y)")


def _npz(path: Path):
    if not path.is_file():
        raise DataError(f"npz file not found: {path}; pass npz:PATH to a file with arrays x "
                        "(N, *input_shape) and optionally y (N,)")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = z.files
        if "x" not in files:
            raise DataError(f"{path} has arrays {files} but no 'x'; save the inputs as x "
                            "(and labels as y)")
        x = _npz_array(path, "x")
        y = None
        if "y" in files:
            with np.load(path, allow_pickle=False) as z:
                y = np.asarray(z["y"])
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz file ({str(exc).splitlines()[0]}); "
                        "save the data with numpy.savez(PATH, x=..., y=...)") from exc
    if y is not None:
        _check_dtype(y.dtype, path, "y")
        if y.ndim != 1 or y.shape[0] != x[0] or not np.all(np.round(y) == y):
            raise DataError(f"{path}: y must be N = {x[0]} integer labels, got {y.dtype} "
                            f"{y.shape}")
        y = y.astype(np.int64)
    return x, y


# --- fitting to the network ----------------------------------------------------------------
def fit_transform(raw: tuple[int, ...], want: tuple[int, ...], spec: str,
                  layout: str = "CHW") -> Callable[[np.ndarray], np.ndarray]:
    """The map of a batch of ``raw``-shaped samples to the network's ``want`` shape: the
    identity when they match; ``HWC`` moves the last axis to the channel axis; ``flat``
    (and digits into a flat network) reshapes in C order; else a one-line error."""
    raw, want = tuple(raw), tuple(want)
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    same_size = int(np.prod(raw)) == int(np.prod(want))
    if layout == "HWC" and len(raw) >= 3:
        moved = (*raw[:-3], raw[-1], *raw[-3:-1])
        if moved == want:
            return lambda x: np.moveaxis(x, -1, -3)
    elif raw == want and layout == "CHW":
        return lambda x: x
    elif same_size and (layout == "flat" or spec == "digits"):
        return lambda x: x.reshape(len(x), *want)
    raise DataError(f"data {spec!r} has samples of shape {raw}, the network expects "
                    f"{want}; {_shape_hint(raw, want, layout)}")


def _shape_hint(raw: tuple, want: tuple, layout: str) -> str:
    if len(want) == 4 and len(raw) == 4 and raw[1:] == want[1:]:
        return (f"the network reads {want[0]} event frames per sample, the data have "
                f"{raw[0]}: re-bin the events into {want[0]} frames")
    if len(want) == 4 and len(raw) != 4:
        return "the network reads event frames (T, C, H, W): pass event-frame data"
    if len(raw) == 4 and len(want) != 4:
        return ("the data are event frames (T, C, H, W), the network reads one sample: "
                "compile the model for event frames or pass its kind of data")
    if int(np.prod(raw)) != int(np.prod(want)):
        return "simulate it on data of that shape"
    if layout != "HWC" and len(raw) == len(want) >= 3 and raw[-1] == want[-3]:
        return "if the arrays are channels-last, pass --layout HWC"
    return "to read the samples in C order as that shape, pass --layout flat"


def fit_to_input(x: np.ndarray, want: tuple[int, ...], spec: str,
                 layout: str = "CHW") -> np.ndarray:
    """An in-memory batch fitted to the network's input shape (:func:`fit_transform`)."""
    x = np.asarray(x)
    return fit_transform(x.shape[1:], want, spec, layout)(x)


def statistics_warning(x: np.ndarray, spec: str) -> str | None:
    """A warning when ``x``'s per-channel statistics are far from a training
    normalisation (:data:`NORMALISED_MEAN_MAX`, :data:`NORMALISED_STD_RANGE`), else None."""
    axis = 1 if x.ndim >= 3 else None
    c = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1) if axis else x.reshape(1, -1)
    mean, std = c.mean(axis=1), c.std(axis=1)
    lo, hi = NORMALISED_STD_RANGE
    if np.all(np.abs(mean) <= NORMALISED_MEAN_MAX) and np.all((std >= lo) & (std <= hi)):
        return None
    return (f"warning: {spec}: the inputs have mean {np.round(mean, 3).tolist()} and std "
            f"{np.round(std, 3).tolist()} per channel (first {len(x)} samples), far from "
            "the training normalisation (about 0 and 1): normalise them as the trainer "
            "does (e.g. (x/255 - mean)/std per channel) or the accuracy means nothing")


def open_dataset(spec: str, sample_shape: tuple[int, ...], layout: str | None = None
                 ) -> DataSource:
    """The data set ``spec`` (:data:`SPECS`) shaped for a network whose samples are
    ``sample_shape`` (``layout`` only for ``npz``)."""
    kind, _, arg = spec.partition(":")
    path = Path(arg).expanduser()
    if layout not in (None, "CHW") and kind != "npz":
        raise DataError(f"--layout applies to npz data only ({kind} has a known layout)")
    if kind == "digits" and not arg:
        ds = load_digits_test()
        (n, raw, read), y = _in_memory(ds.x), ds.y
    elif kind in ("cifar10", "cifar100") and arg:
        (n, raw, read), y = _cifar(path, int(kind[5:]))
    elif kind == "imagenet" and arg:
        (n, raw, read), y = _imagenet(path, sample_shape)
    elif kind == "cifar10_dvs" and arg:
        (n, raw, read), y = _dvs(path)
    elif kind == "npz" and arg:
        (n, raw, read), y = _npz(path)
    else:
        raise DataError(f"unknown data spec {spec!r}; use {', '.join(SPECS)}")
    if n == 0:
        raise DataError(f"the data set {spec!r} is empty (0 samples); nothing to simulate")
    fit = fit_transform(raw, tuple(sample_shape), spec, layout or "CHW")
    x = Samples(n, sample_shape, lambda a, b: fit(np.asarray(read(a, b), dtype=np.float64)))
    warning = None
    if kind == "npz" and len(sample_shape) != 4:  # event frames are counts, not normalised
        warning = statistics_warning(x[:STATS_SAMPLES], spec)
    return DataSource(spec, x, y, warning)


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
