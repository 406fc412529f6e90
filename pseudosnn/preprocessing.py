"""Every data set's on-disk layout and eval preprocessing, defined once and torch-free:
the trainer (``pseudosnn/data.py``) and the simulator's loaders
(``pseudosnn/simulator/datasets.py``) both use these definitions.

* ``digits``: scikit-learn's 8x8 digits, pixel values ``/16``, a fixed stratified split
  (1437 train, 360 test), standardised with the training split's mean and std (float32).
* ``cifar10`` / ``cifar100``: the python-pickle batches; ``uint8`` pixels ``/255`` then
  ``(x − mean)/std`` per channel, in float32. :func:`cifar_batch` reads a batch without
  loading its pixels: they stay in the file (a :class:`FileArray`), read slice by slice.
* ``imagenet``: class folders of images; eval = resize the shorter side to
  ``round(size·256/224)`` (bilinear), centre crop ``size``, ``/255``, ``(x − mean)/std``.
* ``cifar10_dvs``: class folders of ``.npz`` files holding ``frames [T, 2, H, W]`` (event
  counts per polarity, used as they are).
"""

from __future__ import annotations

import functools
import io
import pickle
import pickletools
from pathlib import Path

import numpy as np

from pseudosnn.errors import PseudoSNNError

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
IMAGENET_RESIZE_RATIO = 256 / 224
"""Eval resize of the shorter side before the centre crop (the usual ImageNet recipe)."""
DIGITS_MAX_VALUE = 16.0
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0
CIFAR = {  # test batch, its label key, normalisation
    10: ("test_batch", b"labels", CIFAR10_MEAN, CIFAR10_STD),
    100: ("test", b"fine_labels", CIFAR100_MEAN, CIFAR100_STD),
}
IMAGENET_LAYOUT = "train/<class>/<image> and val/<class>/<image>"
DVS_LAYOUT = ("train/<class>/<sample>.npz and test/<class>/<sample>.npz with frames "
              "[T, 2, H, W]")


class DataError(PseudoSNNError, ValueError):
    """A data set that is missing or not in its format; the message names the format."""


class DataNotFound(DataError, FileNotFoundError):
    """A data path that is missing or does not have the expected layout."""


# --- digits ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def digits_split() -> tuple[np.ndarray, ...]:
    """``(x_train, x_test, y_train, y_test)``: pixels ``/16`` (float32), fixed split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32) / np.float32(DIGITS_MAX_VALUE)
    return tuple(train_test_split(x, d.target, test_size=DIGITS_TEST_SIZE,
                                  random_state=DIGITS_SPLIT_SEED, stratify=d.target))


def digits_normalise(x: np.ndarray) -> np.ndarray:
    """``(x − mean)/std`` with the training split's statistics, as ``(N, 1, 8, 8)``."""
    train = digits_split()[0]
    return ((x - train.mean()) / train.std())[:, None]


# --- CIFAR python pickles ----------------------------------------------------------------
_NUMPY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                  "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
                  ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                  ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                  ("_codecs", "encode")}  # protocol-2 pickles written by Python 3 wrap bytes
_RAW_BYTES_OPS = {"SHORT_BINSTRING": 1, "SHORT_BINBYTES": 1, "BINSTRING": 4, "BINBYTES": 4,
                  "BINBYTES8": 8, "BYTEARRAY8": 8}
"""Pickle opcodes whose argument is raw bytes, and the width of their length field."""


class FileArray:
    """A C-ordered array stored raw in a file at ``offset``, read in slices along its first
    axis: ``a[i:j]`` reads those rows into a fresh array (nothing stays mapped, so memory
    does not grow with the file); ``np.asarray(a)`` reads it all."""

    def __init__(self, path: Path, dtype, shape: tuple[int, ...], offset: int):
        self.path, self.dtype, self.shape = Path(path), np.dtype(dtype), tuple(shape)
        self.offset = int(offset)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def reshape(self, *shape) -> FileArray:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        return FileArray(self.path, self.dtype, _resolved(shape, self.shape), self.offset)

    def __getitem__(self, key) -> np.ndarray:
        a, b, step = key.indices(len(self)) if isinstance(key, slice) else (key, key + 1, 1)
        if step != 1:
            raise TypeError("a FileArray is read in contiguous slices a[i:j]")
        row = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        n = max(b - a, 0)
        out = np.fromfile(self.path, dtype=self.dtype, count=n * row // self.dtype.itemsize,
                          offset=self.offset + a * row).reshape(n, *self.shape[1:])
        return out if isinstance(key, slice) else out[0]

    def __array__(self, dtype=None, copy=None):
        x = self[:]
        return x if dtype is None else x.astype(dtype)


def _resolved(shape: tuple, like: tuple) -> tuple[int, ...]:
    """``shape`` with one ``-1`` resolved to hold as many elements as ``like``."""
    shape = [int(s) for s in shape]
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        shape[shape.index(-1)] = int(np.prod(like)) // known
    if int(np.prod(shape)) != int(np.prod(like)):
        raise ValueError(f"cannot reshape {like} into {tuple(shape)}")
    return tuple(shape)


class _Pending:
    """An array whose raw data the reader left in the file (see :func:`cifar_batch`)."""

    def __init__(self, *args):
        self.shape = self.dtype = None
        self.order = "C"
        self.data = b""

    def __setstate__(self, state):  # ndarray.__reduce__: (version, shape, dtype, F, raw)
        _, self.shape, self.dtype, fortran, self.data = state
        self.order = "F" if fortran else "C"


def _frombuffer(data, dtype, shape, order):  # ndarray.__reduce_ex__(5)
    p = _Pending()
    p.__setstate__((1, shape, dtype, order == "F", bytes(data)))
    return p


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts of bytes, lists and numpy arrays) and refuses any other
    global, so a tampered file cannot run code; numpy arrays become :class:`_Pending`."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch "
                                         "holds only numpy arrays, lists and bytes")
        if name == "_reconstruct":
            return _Pending
        if name == "_frombuffer":
            return _frombuffer
        return super().find_class(module, name)


def _scan(f) -> tuple[tuple[int, int, int] | None, list[tuple[int, int]]]:
    """The largest raw-bytes argument of the pickle in ``f`` as ``(opcode position, data
    offset, end)``, found without reading it, and the byte ranges of its ``FRAME`` opcodes
    (a frame's length no longer holds once the blob is cut out; unframed is valid)."""
    best, frames = None, []
    while code := f.read(1):
        op = pickletools.code2op.get(code.decode("latin-1"))
        if op is None:
            raise pickle.UnpicklingError(f"invalid pickle opcode {code!r}")
        width = _RAW_BYTES_OPS.get(op.name)
        if width is not None:
            n = int.from_bytes(f.read(width), "little")
            start = f.tell()
            f.seek(n, io.SEEK_CUR)
            if best is None or n > best[2] - best[1]:
                best = (start - width - 1, start, start + n)
        elif op.name == "FRAME":
            frames.append((f.tell() - 1, f.tell() + 8))
            f.seek(8, io.SEEK_CUR)
        elif op.arg is not None:
            op.arg.reader(f)
        if op.name == "STOP":
            break
    return best, frames


def _without(f, cuts: list[tuple[int, int]], insert_at: int, insert: bytes) -> bytes:
    """The bytes of ``f`` without the ``cuts`` ranges, ``insert`` put at ``insert_at``."""
    out, pos = [], 0
    for a, b in sorted(cuts):
        f.seek(pos)
        out.append(f.read(a - pos))
        if a == insert_at:
            out.append(insert)
        pos = b
    f.seek(pos)
    out.append(f.read())
    return b"".join(out)


def _realise(obj, path: Path, offset: int):
    """Replace :class:`_Pending` arrays in ``obj``: the one without data reads the file at
    ``offset`` (a :class:`FileArray`), the others are copied from their bytes."""
    if isinstance(obj, dict):
        return {k: _realise(v, path, offset) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_realise(v, path, offset) for v in obj]
    if not isinstance(obj, _Pending):
        return obj
    if not obj.data and int(np.prod(obj.shape)) > 0 and obj.order == "C":
        return FileArray(path, obj.dtype, tuple(obj.shape), offset)
    return np.frombuffer(obj.data, dtype=obj.dtype).reshape(obj.shape, order=obj.order)


def load_pickle_arrays(path: Path) -> dict:
    """A CIFAR batch pickle as a dict whose largest raw-bytes array stays where it lies in
    the file (a :class:`FileArray`): the pixels are read on demand, batch by batch. Files
    whose pixels are not raw bytes (protocol 2 written by Python 3) load whole."""
    try:
        with open(path, "rb") as f:
            blob, frames = _scan(f)
            if blob is not None:  # the stream without the blob (an empty bytes in its place)
                op, start, end = blob
                stream = _without(f, [*frames, (op, end)], op, b"C\x00")
                obj = _ArrayUnpickler(io.BytesIO(stream), encoding="bytes").load()
                mapped = _realise(obj, Path(path), start)
                if any(isinstance(v, FileArray) for v in _values(mapped)):
                    return mapped
            f.seek(0)
            return _realise(_ArrayUnpickler(f, encoding="bytes").load(), Path(path), 0)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a CIFAR python-pickle batch: {exc}") from exc


def _values(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _values(v)
    else:
        yield obj


def cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels (N, 3, 32, 32) uint8, read on demand; labels (N,) int64)`` of one batch."""
    batch = load_pickle_arrays(path)
    try:
        data = batch[b"data"]
        data = data if isinstance(data, FileArray) else np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"b'data' is {data.dtype} {data.shape}, not uint8 N x 3072")
        labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path} is not a CIFAR python batch (needs b'data' of N x 3072 "
                        f"uint8 and {label_key!r}): {exc}") from exc
    if labels.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    return data.reshape(-1, 3, 32, 32), labels


def cifar_normalise(pixels: np.ndarray, mean, std) -> np.ndarray:
    """``(x/255 − mean)/std`` per channel of ``uint8 (N, 3, H, W)``, float32."""
    x = np.asarray(pixels).astype(np.float32) / np.float32(255.0)
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return (x - m) / s


# --- class folders (ImageNet images, DVS frames) -------------------------------------------
def class_folder(d: Path, suffixes: tuple[str, ...], layout: str
                 ) -> tuple[list[tuple[Path, int]], list[str]]:
    """``(file, class index)`` of ``d/<class>/<file>`` (classes: the sorted folder names)."""
    if not d.is_dir():
        raise DataNotFound(f"missing folder {d}: expected {layout}; point the data path at "
                           "the folder that holds it")
    classes = sorted(p.name for p in d.iterdir() if p.is_dir())
    items = [(f, i) for i, c in enumerate(classes) for f in sorted((d / c).iterdir())
             if f.suffix.lower() in suffixes]
    if not items:
        raise DataNotFound(f"no samples under {d}: expected {layout}")
    return items, classes


def resized_image(path: Path, size: int, resize: int) -> np.ndarray:
    """An image as ``(3, h, w)`` float32 in ``[0, 1]``, the shorter side resized to
    ``resize`` (bilinear, each side at least ``size``)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            r = resize / min(w, h)
            im = im.resize((max(size, round(w * r)), max(size, round(h * r))), Image.BILINEAR)
            return (np.asarray(im, dtype=np.float32) / np.float32(255.0)).transpose(2, 0, 1)
    except OSError as exc:
        raise DataError(f"{path} is not an image PIL can read: {exc}") from exc


def imagenet_normalise(x: np.ndarray) -> np.ndarray:
    """``(x − mean)/std`` per channel of ``(3, H, W)`` float32."""
    return (x - np.asarray(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)) / \
        np.asarray(IMAGENET_STD, np.float32).reshape(3, 1, 1)


def imagenet_eval(path: Path, size: int) -> np.ndarray:
    """The eval transform: resize, centre crop ``size`` x ``size``, normalise."""
    x = resized_image(path, size, round(size * IMAGENET_RESIZE_RATIO))
    h, w = x.shape[1:]
    top, left = (h - size) // 2, (w - size) // 2
    return imagenet_normalise(x[:, top:top + size, left:left + size])


def read_frames(path: Path) -> np.ndarray:
    """The ``frames [T, 2, H, W]`` of one DVS sample, float32."""
    try:
        with np.load(path, allow_pickle=False) as z:
            x = np.asarray(z["frames"]) if "frames" in z.files else None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz of event frames: {exc}") from exc
    if x is None:
        raise DataError(f"{path} has no array 'frames' ([T, 2, H, W] expected)")
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: frames are {x.dtype} {tuple(x.shape)}, expected numbers "
                        "[T, 2, H, W]")
    return x.astype(np.float32)
