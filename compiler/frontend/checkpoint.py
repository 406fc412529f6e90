"""Load anything the compiler accepts and return its IR (and our checkpoints' torch model).

* ``.onnx``: a rate-equivalent ONNX file (:func:`pseudosnn.compiler.onnx_io.from_onnx`);
* ``.safetensors``: weights + model record exported by ``pseudosnn``;
* ``.pth``/``.pt``: our checkpoints (``format == "pseudosnn.checkpoint"``) or checkpoints
  written by the paper's public code (a dict with ``model`` and an ``args`` record).

Torch files are read by :func:`pseudosnn.checkpoint.torch_load`: ``weights_only=True``
(``argparse.Namespace``, the paper's ``args``, is allow-listed); anything that needs full
unpickling is refused unless ``trusted=True`` (``--trust-checkpoint``).
"""

from __future__ import annotations

from pathlib import Path

from pseudosnn.compiler import ir
from pseudosnn.compiler.frontend.torch_model import FrontendError, model_to_ir


def ours_to_model_and_ir(ckpt: dict, max_timesteps: int | None = None):
    """Our checkpoint dict (``load_checkpoint``/``load_safetensors``) -> (the torch model
    in eval mode, its IR)."""
    from pseudosnn.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(ckpt)
    return model, model_to_ir(model, max_timesteps=max_timesteps)


def load_model_and_ir(path: str | Path, trusted: bool = False,
                      max_timesteps: int | None = None,
                      input_shape: tuple[int, ...] | None = None):
    """``(torch model or None, IR)`` of a checkpoint, safetensors or ONNX file (see the
    module docstring): the model of our own checkpoints, None for ONNX files and the
    paper's checkpoints."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FrontendError(f"{path} does not exist")
    if path.suffix == ".onnx":
        from pseudosnn.compiler.onnx_io import from_onnx

        graph = from_onnx(str(path))
        ir.check(graph, max_timesteps)
        return None, graph
    from pseudosnn.checkpoint import (
        FORMAT,
        CheckpointError,
        load_safetensors,
        torch_load,
        validate_checkpoint,
    )

    try:
        if path.suffix == ".safetensors":
            return ours_to_model_and_ir(load_safetensors(path), max_timesteps)
        obj = torch_load(path, trusted)
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            return ours_to_model_and_ir(validate_checkpoint(obj, path), max_timesteps)
    except CheckpointError as exc:
        raise FrontendError(str(exc)) from exc
    if isinstance(obj, dict) and "model" in obj and "args" in obj:
        from pseudosnn.compiler.frontend.paper import paper_to_ir

        return None, paper_to_ir(obj, input_shape=input_shape, max_timesteps=max_timesteps)
    raise FrontendError(f"{path} is neither a pseudosnn checkpoint (format tag) nor a "
                        "checkpoint of the paper's code (keys 'model' and 'args')")
