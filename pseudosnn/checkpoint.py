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

import argparse
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
    """Write ``ckpt`` atomically (temporary sibling, then ``os.replace``); a checkpoint
    with NaN or Inf weights is refused, never written."""
    bad = nonfinite_tensors(ckpt["state_dict"])
    if bad:
        raise CheckpointError(f"refusing to write {path}: {', '.join(bad[:5])} hold NaN or "
                              "Inf values (training diverged)")
    write_atomic_with(path, lambda f: torch.save(ckpt, f))


def nonfinite_tensors(state_dict: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` that hold NaN or Inf."""
    return [k for k, v in state_dict.items()
            if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


NEEDS_FULL_UNPICKLING = ("Unsupported global", "unrecognized function",
                         "Can only create new object", "add_safe_globals")
"""What torch's weights-only unpickler says about a well-formed pickle that holds objects
outside its allow-list; any other unpickling error means the file is not a pickle."""


def torch_load(path: str | Path, trusted: bool = False) -> Any:
    """``torch.load`` of a file the user named: weights-only (``argparse.Namespace``, the
    paper's ``args``, allowed); full unpickling, which can run code, only when
    ``trusted``. A corrupt, truncated or foreign file is a :class:`CheckpointError`, never
    a request for ``--trust-checkpoint``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        inner = e.__context__ or e
        if not any(s in str(inner) for s in NEEDS_FULL_UNPICKLING):
            raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: "
                                  f"{_first_line(inner)}") from e
        if not trusted:
            raise CheckpointError(
                f"checkpoint {path} contains Python objects that need full unpickling, which "
                "can run arbitrary code. Load it only if you trust its origin: pass "
                "--trust-checkpoint (or trusted=True)") from e
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:
            raise CheckpointError(f"checkpoint {path} is corrupt: {_first_line(e2)}") from e2
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: "
                              f"{_first_line(e)}") from e


def load_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """Load one of our checkpoints (:func:`torch_load`; ``.safetensors`` exports too)."""
    path = Path(path).expanduser()
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    return validate_checkpoint(torch_load(path, trusted), path)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def validate_checkpoint(ckpt: Any, path: Path) -> dict[str, Any]:
    """``ckpt`` if it is one of our checkpoints (format tag, version, keys)."""
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
    check_state_dict(model.state_dict(), ckpt["state_dict"], f"architecture {rec['arch']!r}",
                     "check the architecture/config recorded in the checkpoint")
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def check_state_dict(expected: dict, given: dict, what: str, fix: str) -> None:
    """Missing and unexpected keys (and shape mismatches), all listed in one error that
    ends with ``fix``."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}"
                     + (" ..." if len(missing) > 20 else ""))
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}"
                     + (" ..." if len(unexpected) > 20 else ""))
    if shapes:
        parts.append("shape mismatches: " + "; ".join(shapes[:10]))
    raise CheckpointError(f"the state dict does not match {what}: " + "; ".join(parts)
                          + f". {fix[0].upper()}{fix[1:]}")


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
    try:
        rec = json.loads(meta[SAFETENSORS_METADATA_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: its {SAFETENSORS_METADATA_KEY!r} metadata is not "
                              f"valid JSON ({e}); export the checkpoint again") from e
    return validate_checkpoint({**rec, "state_dict": tensors, "optimizer": None, "scheduler": None,
                      "rng": None, "config": {}, "extra": {}}, path)
