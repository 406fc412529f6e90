"""The compiled artifact: a directory that any backend can load without torch.

Layout::

    ARTIFACT/
      manifest.json   format version, toolchain version, target, sha256 of every file
      graph.json      nodes, spike pools and projections (names, shapes, scalars,
                      schedule); the input (event frames, analog stem)
      weights.npz     every array (weights, biases, T, event scales, the stem's conv),
                      keyed by node;
                      integers in the narrowest exact type (int64 again on load); a conv
                      kernel constant on stride-sized blocks (a fused avgpool+conv) as its
                      block kernel and a global-pool+linear matrix per channel, both
                      expanded exactly on load; weights shared by several projections
                      (residual summands) once
      model.onnx      the rate-equivalent ONNX model (optional, written by the compiler)
      ...             backend extras (e.g. the Lava entry point), hashed as well

Writing is atomic (a temporary sibling directory swapped into place) and replaces only
an empty folder or another artifact (anything else needs ``force``); loading checks
the format version and every hash before it trusts a byte, and fails with
:class:`ArtifactError` naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from pseudosnn.compiler.atomic import (
    replace_dir,
    safe_output_path,
    temporary_sibling_dir,
    write_atomic,
    write_atomic_with,
)
from pseudosnn.compiler.spiking.graph import (
    AnalogStem,
    GraphError,
    InputNode,
    Population,
    Projection,
    Readout,
    SpikePool,
    SpikingGraph,
    validate,
)
from pseudosnn.compiler.spiking.synapses import block_kernel

from pseudosnn import __version__
from pseudosnn.errors import PseudoSNNError, UsageError

FORMAT_VERSION = 5
"""2: ``units_per_float`` (was ``scale``), the trained layers in ``meta``; 3: spike pools,
the input's event frames and analog stem; 4: and every population's dynamics (``du``,
``dv``, ``v_reset``, ``fire``); 5: the readout's ``decay`` (a leaky readout), every
record field written (None where absent) and read without defaults."""
MANIFEST = "manifest.json"
GRAPH = "graph.json"
WEIGHTS = "weights.npz"


class ArtifactError(PseudoSNNError, RuntimeError):
    """An artifact is missing, tampered with, or from an incompatible version."""


class ArtifactExistsError(UsageError):
    """The output folder holds something an artifact would replace (use ``force``)."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def graph_to_records(graph: SpikingGraph) -> tuple[dict, dict[str, np.ndarray]]:
    """Split a graph into a JSON-able description and a dict of named arrays."""
    arrays: dict[str, np.ndarray] = {}
    pops = []
    for p in graph.populations:
        rec = {k: v for k, v in asdict(p).items() if k not in ("timesteps", "bias")}
        rec["shape"] = list(p.shape)
        arrays[f"pop/{p.name}/timesteps"] = np.asarray(p.timesteps, dtype=np.int64)
        arrays[f"pop/{p.name}/bias"] = np.asarray(p.bias)
        pops.append(_plain(rec))
    projs = []
    first_with: dict[tuple, str] = {}  # weight content -> first projection that has it
    for pr in graph.projections:
        rec = {k: v for k, v in asdict(pr).items() if k not in ("weight", "event_scale")}
        rec["has_event_scale"] = pr.event_scale is not None
        w = np.asarray(pr.weight)
        key = (w.shape, w.dtype.str, hashlib.sha256(np.ascontiguousarray(w).data).digest())
        rec["weight_of"] = first_with.setdefault(key, pr.name)
        rec["weight_block"] = rec["weight_spatial_repeat"] = None
        if rec["weight_of"] == pr.name:  # SEW/residual summands share weights: store once
            block = block_kernel(w, pr.stride) if pr.kind == "conv" else None
            rec["weight_block"] = None if block is None else list(pr.stride)
            per_channel = _global_pool_columns(w, graph.shape_of(pr.source)) \
                if pr.kind == "dense" else None
            rec["weight_spatial_repeat"] = None if per_channel is None \
                else int(w.shape[1] // per_channel.shape[1])
            arrays[f"proj/{pr.name}/weight"] = block if block is not None \
                else per_channel if per_channel is not None else w
        if pr.event_scale is not None:
            arrays[f"proj/{pr.name}/event_scale"] = np.asarray(pr.event_scale)
        projs.append(_plain(rec))
    ro = graph.readout
    arrays[f"readout/{ro.name}/bias"] = np.asarray(ro.bias)
    desc = {
        "input": input_record(graph.input, arrays),
        "pools": pool_records(graph.pools, arrays),
        "populations": pops,
        "readout": {"name": ro.name, "shape": list(ro.shape),
                    "units_per_float": ro.units_per_float, "decay": ro.decay},
        "projections": projs,
        "fixed_point": graph.fixed_point,
        "meta": _plain(graph.meta),
    }
    return desc, arrays


def graph_from_records(desc: dict, arrays) -> SpikingGraph:
    """Inverse of :func:`graph_to_records`."""
    pops = []
    for rec in desc["populations"]:
        name = rec["name"]
        pops.append(Population(
            name=name, shape=tuple(rec["shape"]),
            timesteps=np.asarray(arrays[f"pop/{name}/timesteps"]),
            threshold=rec["threshold"], bias=np.asarray(arrays[f"pop/{name}/bias"]),
            v0=rec["v0"], coupling=rec["coupling"], reset=rec["reset"],
            start=int(rec["start"]), units_per_float=float(rec["units_per_float"]),
            du=float(rec["du"]), dv=float(rec["dv"]), v_reset=rec["v_reset"], fire=rec["fire"],
        ))
    projs = []
    weights: dict[str, np.ndarray] = {}
    for rec in desc["projections"]:
        name = rec["name"]
        es = arrays[f"proj/{name}/event_scale"] if rec["has_event_scale"] else None
        owner = rec["weight_of"]
        if owner != name:
            weight = weights[owner]
        else:
            weight = np.asarray(arrays[f"proj/{name}/weight"])
            if rec["weight_block"]:  # stored as its block kernel: expand, exactly
                s0, s1 = rec["weight_block"]
                weight = np.repeat(np.repeat(weight, s0, axis=2), s1, axis=3)
            if rec["weight_spatial_repeat"]:  # stored per channel: expand, exactly
                weight = np.repeat(weight, rec["weight_spatial_repeat"], axis=1)
        weights[name] = weight
        projs.append(Projection(
            name=name, source=rec["source"], target=rec["target"], kind=rec["kind"],
            weight=weight,
            stride=tuple(rec["stride"]), padding=tuple(rec["padding"]),
            groups=int(rec["groups"]), delay=int(rec["delay"]),
            weight_exp=int(rec["weight_exp"]),
            event_scale=None if es is None else np.asarray(es),
        ))
    ro = desc["readout"]
    return SpikingGraph(
        input=input_from_record(desc["input"], arrays),
        pools=pools_from_records(desc["pools"], arrays),
        populations=tuple(pops),
        readout=Readout(name=ro["name"], shape=tuple(ro["shape"]),
                        bias=np.asarray(arrays[f"readout/{ro['name']}/bias"]),
                        units_per_float=float(ro["units_per_float"]),
                        decay=float(ro["decay"])),
        projections=tuple(projs),
        fixed_point=bool(desc["fixed_point"]),
        meta=desc["meta"],
    )


def input_record(node: InputNode, arrays: dict[str, np.ndarray]) -> dict:
    """The input's description; the analog stem's arrays go to ``arrays``."""
    rec = {"name": node.name, "shape": list(node.shape), "frames": node.frames, "stem": None}
    if node.stem is not None:
        rec["stem"] = _plain({k: v for k, v in asdict(node.stem).items()
                              if k not in AnalogStem._ARRAYS})
        for key in AnalogStem._ARRAYS:
            if getattr(node.stem, key) is not None:
                arrays[f"stem/{key}"] = np.asarray(getattr(node.stem, key))
    return rec


def input_from_record(rec: dict, arrays) -> InputNode:
    """Inverse of :func:`input_record`."""
    stem = None
    if rec["stem"] is not None:
        s = {k: tuple(v) if isinstance(v, list) else v for k, v in rec["stem"].items()}
        stem = AnalogStem(**s, **{k: np.asarray(arrays[f"stem/{k}"])
                                  for k in AnalogStem._ARRAYS if f"stem/{k}" in arrays})
    return InputNode(shape=tuple(rec["shape"]), name=rec["name"],
                     frames=int(rec["frames"]), stem=stem)


def pool_records(pools, arrays: dict[str, np.ndarray]) -> list[dict]:
    """The spike pools' descriptions; their ``timesteps`` go to ``arrays``."""
    out = []
    for p in pools:
        arrays[f"pool/{p.name}/timesteps"] = np.asarray(p.timesteps, dtype=np.int64)
        out.append(_plain({k: v for k, v in asdict(p).items() if k != "timesteps"}))
    return out


def pools_from_records(records: list[dict], arrays) -> tuple[SpikePool, ...]:
    """Inverse of :func:`pool_records`."""
    return tuple(SpikePool(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in rec.items()},
                           timesteps=np.asarray(arrays[f"pool/{rec['name']}/timesteps"]))
                 for rec in records)


def _global_pool_columns(w: np.ndarray, source_shape: tuple[int, ...]) -> np.ndarray | None:
    """``W_c`` (out, C) if the dense matrix ``w`` (out, C*H*W) acting on a (C, H, W) source
    is ``repeat(W_c, H*W, axis=1)``, i.e. global average pooling fused into a linear layer;
    else None."""
    if len(source_shape) != 3 or source_shape[1] * source_shape[2] == 1:
        return None
    c = source_shape[0]
    w3 = w.reshape(w.shape[0], c, -1)
    if not np.array_equal(w3, np.broadcast_to(w3[:, :, :1], w3.shape)):
        return None
    return np.ascontiguousarray(w3[:, :, 0])


def _narrowest(a: np.ndarray) -> np.ndarray:
    """Integer arrays (fixed-point weights, T) stored in the smallest signed type that
    holds them exactly; int8 weights take 1 byte instead of 8."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer) or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    for t in (np.int8, np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t)
    return a


def _widened(a: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_narrowest`: every integer array is int64 in memory."""
    return a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a


def _plain(obj):
    """JSON-friendly copy (tuples to lists, numpy scalars to Python)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def save(
    graph: SpikingGraph, out_dir: str | os.PathLike, target: str = "numpy",
    extra_files: dict[str, bytes] | None = None, force: bool = False,
    keep: tuple[str | os.PathLike, ...] = (),
) -> Path:
    """Write ``graph`` (and ``extra_files``: name -> bytes) as an artifact directory,
    atomically: readers, and a writer killed at any point, see the old artifact or the new
    one, never half of one. ``out_dir`` is checked by :func:`check_output` (``force``,
    ``keep``)."""
    validate(graph)
    out = check_output(out_dir, force=force, keep=keep)
    tmp = temporary_sibling_dir(out)
    try:
        desc, arrays = graph_to_records(graph)
        write_atomic(tmp / GRAPH, json.dumps(desc, indent=1))
        stored = {k: _narrowest(v) for k, v in arrays.items()}
        write_atomic_with(tmp / WEIGHTS, lambda f: np.savez(f, **stored))
        for name, data in (extra_files or {}).items():
            write_atomic(tmp / name, data)
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "format_version": FORMAT_VERSION,
            "toolchain_version": __version__,
            "target": target,
            "files": {name: sha256(tmp / name) for name in files},
        }
        write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1))
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_output(out_dir: str | os.PathLike, force: bool = False,
                 keep: tuple[str | os.PathLike, ...] = ()) -> Path:
    """The absolute artifact path, if writing there loses nothing: it must not be the
    current folder, a folder above it, or one of ``keep`` (the inputs) or hold one
    (never, even with ``force``), and it must be missing, an empty folder or an artifact
    whose manifest lists everything in it (anything else only with ``force``)."""
    out = safe_output_path(out_dir, keep, what="the artifact folder")
    problem = _not_replaceable(out)
    if problem and not force:
        raise ArtifactExistsError(
            f"{out_dir} {problem}; compiling into it would delete that. Choose another "
            "output folder, or pass --force to replace it")
    return out


def _not_replaceable(out: Path) -> str | None:
    """What replacing ``out`` would lose (None: nothing, it is missing, an empty folder or
    an artifact whose manifest lists every entry)."""
    if not os.path.lexists(out):
        return None
    if not out.is_dir():
        return "is a file, not an artifact folder"
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return None
    try:
        listed = json.loads((out / MANIFEST).read_text())["files"]
        ours = {MANIFEST, *(Path(name).parts[0] for name in listed)}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return f"is not a compiled artifact (no valid {MANIFEST}) and holds " \
            f"{_some(entries)}"
    others = [e for e in entries if e not in ours]
    return f"is an artifact but also holds {_some(others)}, which its manifest does not " \
        "list" if others else None


def _some(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def read_manifest(art_dir: str | os.PathLike) -> dict:
    """Load and check the manifest and every file hash; return the manifest."""
    root = Path(art_dir)
    if not (root / MANIFEST).is_file():
        raise ArtifactError(f"{root} is not a compiled artifact (no {MANIFEST}); compile a "
                            "model with `pseudosnn-compile MODEL -o DIR` first")
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{root / MANIFEST} is not valid JSON: {exc}") from exc
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{root} has artifact format {version}, this toolchain ({__version__}) reads "
            f"format {FORMAT_VERSION}; recompile the model with this version")
    for name, digest in manifest.get("files", {}).items():
        path = root / name
        if not path.is_file():
            raise ArtifactError(f"{root}: {name} is listed in the manifest but missing")
        if sha256(path) != digest:
            raise ArtifactError(f"{root}: {name} does not match its sha256 in the manifest "
                                "(edited or corrupted); recompile the artifact")
    for required in (GRAPH, WEIGHTS):
        if required not in manifest.get("files", {}):
            raise ArtifactError(f"{root}: the manifest does not list {required}")
    return manifest


def load(art_dir: str | os.PathLike) -> SpikingGraph:
    """Load and validate an artifact's spiking graph (hashes checked first)."""
    root = Path(art_dir)
    read_manifest(root)
    try:
        desc = json.loads((root / GRAPH).read_text())
        with np.load(root / WEIGHTS, allow_pickle=False) as npz:
            arrays = {k: _widened(npz[k]) for k in npz.files}
        graph = graph_from_records(desc, arrays)
    except KeyError as exc:
        raise ArtifactError(f"{root}: {GRAPH} and {WEIGHTS} do not match (missing {exc})") from exc
    except (ValueError, TypeError, AttributeError, IndexError, OSError,
            zipfile.BadZipFile) as exc:  # hashes match, so the manifest was rewritten too
        raise ArtifactError(
            f"{root}: {GRAPH} or {WEIGHTS} is malformed ({_first_line(exc)}); the artifact "
            "was edited after compiling: recompile it") from exc
    try:
        validate(graph)
    except GraphError as exc:
        raise ArtifactError(f"{root} holds an invalid graph ({exc}); recompile it") from exc
    return graph


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
