"""Checkpoints: everything needed to rebuild, evaluate and resume a model, loadable with
``torch.load(weights_only=True)`` (only tensors, numbers, strings, lists, tuples, dicts).

Layout of the dict::

    format "pseudosnn.checkpoint", version 1, toolchain_version
    model: {arch, num_classes, input_shape, neuron, residual_mode, pooling, class_names}
    state_dict, optimizer, scheduler (state dicts or None), epoch, best_acc, rng, config

Files are written atomically (temporary file in the same folder, then ``os.replace``).
A file that needs full unpickling is loaded only when the user says it is trusted.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pseudosnn import __version__
from pseudosnn.compiler.atomic import write_atomic, write_atomic_with
from pseudosnn.errors import PseudoSNNError

FORMAT = "pseudosnn.checkpoint"
VERSION = 1
SAFETENSORS_METADATA_KEY = "pseudosnn"


class CheckpointError(PseudoSNNError, ValueError):
    """A checkpoint that is missing, corrupt, untrusted or not ours."""


def model_record(model: nn.Module, class_names: list[str] | None = None) -> dict[str, Any]:
    """What :func:`model_from_checkpoint` needs to rebuild ``model``."""
    return {
        "arch": model.arch,
        "num_classes": int(model.num_classes),
        "input_shape": [int(s) for s in model.input_shape],
        "neuron": dict(model.neuron_config),
        "residual_mode": getattr(model, "residual_mode", "mean"),
        "pooling": getattr(model, "pooling", "avg"),
        "class_names": list(class_names) if class_names is not None
        else [str(i) for i in range(model.num_classes)],
    }


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch generator states as weights-only-loadable values."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def make_checkpoint(model: nn.Module, *, epoch: int, config: dict[str, Any] | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                    class_names: list[str] | None = None, best_acc: float = 0.0,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {
        "format": FORMAT,
        "version": VERSION,
        "toolchain_version": __version__,
        "model": model_record(model, class_names),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "best_acc": float(best_acc),
        "rng": rng_state(),
        "config": dict(config or {}),
        "extra": dict(extra or {}),
    }


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> None:
    """Write ``ckpt`` atomically (temporary sibling, then ``os.replace``)."""
    write_atomic_with(path, lambda f: torch.save(ckpt, f))


def load_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a file that needs full unpickling is
    loaded only with ``trusted=True`` (``--trust-checkpoint``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower() and "weights_only" not in str(e).lower():
            raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: "
                                  f"{_first_line(e)}") from e
        if not trusted:
            raise CheckpointError(
                f"checkpoint {path} contains objects that need full unpickling, which can "
                "run arbitrary code. Load it only if you trust its origin: pass "
                "--trust-checkpoint (or trusted=True)") from e
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:
            raise CheckpointError(f"checkpoint {path} is corrupt: {_first_line(e2)}") from e2
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: "
                              f"{_first_line(e)}") from e
    return _validate(ckpt, path)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _validate(ckpt: Any, path: Path) -> dict[str, Any]:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a PseudoSNN checkpoint (no format tag "
                              f"{FORMAT!r}); train one with `pseudosnn train`")
    if int(ckpt.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt['version']}, newer than "
                              f"this toolchain's {VERSION}; upgrade pseudosnn")
    for key in ("model", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{path} lacks {key!r}")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the model of a checkpoint (from :func:`load_checkpoint` or
    :func:`load_safetensors`) with its weights, in eval mode."""
    from pseudosnn.models import build_from_record

    rec = ckpt["model"]
    model = build_from_record(rec)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"the checkpoint's weights do not fit {rec['arch']}: "
                              f"{_first_line(e)}") from e
    return model.eval()


def export_safetensors(ckpt: dict[str, Any], path: str | Path) -> None:
    """Write the weights as safetensors with the model record as JSON metadata."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in ckpt["state_dict"].items()}
    meta = {"format": FORMAT, "version": VERSION,
            "toolchain_version": ckpt.get("toolchain_version", __version__),
            "model": ckpt["model"], "epoch": ckpt.get("epoch"), "best_acc": ckpt.get("best_acc")}
    write_atomic(path, save(tensors, metadata={SAFETENSORS_METADATA_KEY: json.dumps(meta)}))


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """The dict shape of :func:`load_checkpoint` (no optimizer/scheduler/RNG state)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path).expanduser()
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: "
                              f"{_first_line(e)}") from e
    if SAFETENSORS_METADATA_KEY not in meta:
        raise CheckpointError(f"{path} has no {SAFETENSORS_METADATA_KEY!r} metadata: not "
                              "exported by pseudosnn")
    rec = json.loads(meta[SAFETENSORS_METADATA_KEY])
    return _validate({**rec, "state_dict": tensors, "optimizer": None, "scheduler": None,
                      "rng": None, "config": {}, "extra": {}}, path)
