"""Load anything the compiler accepts and return its IR.

* ``.onnx``: a rate-equivalent ONNX file (:func:`pseudosnn.compiler.onnx_io.from_onnx`);
* ``.safetensors``: weights + model record exported by ``pseudosnn``;
* ``.pth``/``.pt``: our checkpoints (``format == "pseudosnn.checkpoint"``) or checkpoints
  written by the paper's public code (a dict with ``model`` and an ``args`` record).

Torch files are read with ``weights_only=True`` (``argparse.Namespace``, the paper's
``args``, is allow-listed); anything that needs full unpickling is refused unless
``trusted=True`` (``--trust-checkpoint``).
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from pseudosnn.compiler import ir
from pseudosnn.compiler.frontend.torch_model import FrontendError, model_to_ir


def _torch_load(path: Path, trusted: bool):
    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trusted:
            raise FrontendError(
                f"{path} contains Python objects that need full unpickling, which can run "
                "arbitrary code. Compile it only if you trust its origin: pass "
                "--trust-checkpoint") from exc
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise FrontendError(f"{path} is corrupt or not a torch file: {exc2}") from exc2
    except Exception as exc:
        raise FrontendError(f"{path} is corrupt or not a torch file: "
                            f"{str(exc).splitlines()[0] if str(exc) else exc}") from exc


def check_state_dict(expected: dict, given: dict, what: str) -> None:
    """Missing and unexpected keys (and shape mismatches), all listed in one error."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}"
                         + (" ..." if len(missing) > 20 else ""))
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}"
                         + (" ..." if len(unexpected) > 20 else ""))
        if shapes:
            parts.append("shape mismatches: " + "; ".join(shapes[:10]))
        raise FrontendError(f"the state dict does not match {what}: " + "; ".join(parts)
                            + ". Check the architecture/config recorded in the checkpoint")


def ours_to_ir(ckpt: dict, max_timesteps: int | None = None) -> ir.Graph:
    """Our checkpoint dict (``load_checkpoint``/``load_safetensors``) -> IR."""
    from pseudosnn.models import build_from_record

    rec = ckpt["model"]
    model = build_from_record(rec)
    sd = ckpt["state_dict"]
    check_state_dict(model.state_dict(), sd, f"architecture {rec['arch']!r}")
    model.load_state_dict(sd)
    return model_to_ir(model.eval(), max_timesteps=max_timesteps)


def load_ir(path: str | Path, trusted: bool = False, max_timesteps: int | None = None,
            input_shape: tuple[int, ...] | None = None) -> ir.Graph:
    """IR of a checkpoint, safetensors or ONNX file (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FrontendError(f"{path} does not exist")
    if path.suffix == ".onnx":
        from pseudosnn.compiler.onnx_io import from_onnx

        graph = from_onnx(str(path))
        ir.check(graph, max_timesteps)
        return graph
    from pseudosnn.checkpoint import CheckpointError, load_safetensors

    if path.suffix == ".safetensors":
        try:
            return ours_to_ir(load_safetensors(path), max_timesteps)
        except CheckpointError as exc:
            raise FrontendError(str(exc)) from exc
    obj = _torch_load(path, trusted)
    if isinstance(obj, dict) and obj.get("format") == "pseudosnn.checkpoint":
        from pseudosnn.checkpoint import load_checkpoint

        try:
            ckpt = load_checkpoint(path, trusted=trusted)
        except CheckpointError as exc:
            raise FrontendError(str(exc)) from exc
        return ours_to_ir(ckpt, max_timesteps)
    if isinstance(obj, dict) and "model" in obj and "args" in obj:
        from pseudosnn.compiler.frontend.paper import paper_to_ir

        return paper_to_ir(obj, input_shape=input_shape, max_timesteps=max_timesteps)
    raise FrontendError(f"{path} is neither a pseudosnn checkpoint (format tag) nor a "
                        "checkpoint of the paper's code (keys 'model' and 'args')")
