"""The compiled artifact: a directory that any backend can load without torch.

Layout::

    ARTIFACT/
      manifest.json   format version, toolchain version, target, sha256 of every file
      graph.json      nodes, spike pools and projections (names, shapes, scalars,
                      schedule); the input (event frames, analog stem)
      weights.npz     every array (weights, factors, biases, T, event scales, the stem's
                      conv), keyed by node, each in its narrowest exact type (float32 where
                      every value is a float32, int8 fixed-point weights; T, biases and the
                      stem widened again on load, weights and trained bases kept narrow in
                      memory); a projection's trained factors rather than its composed
                      weight, and a base that composes trained layers with no neuron
                      between (PreAct-ResNet's shortcuts and readout on a residual stream)
                      as its recipe, the trained pieces, composed again on load by the
                      compiler's code and checked against its sha256; a materialised conv
                      kernel constant on stride-sized blocks (a fused avgpool+conv) as its
                      block kernel and a global-pool+linear matrix per channel, both
                      expanded exactly on load; arrays shared by several projections
                      (residual summands) once
      model.onnx      the rate-equivalent ONNX model of the trained layers (optional,
                      written by the compiler); a trained base that is one of its
                      initializers is stored there only (``"onnx:<name>"`` in graph.json)
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
from pseudosnn.compiler import ir
from pseudosnn.compiler.atomic import (
    replace_dir,
    safe_output_path,
    temporary_sibling_dir,
    write_atomic,
    write_atomic_with,
)
from pseudosnn.compiler.passes.avgpool_fusion import Composition, composition_of
from pseudosnn.compiler.spiking.graph import (
    AnalogStem,
    Factors,
    GraphError,
    InputNode,
    Population,
    Projection,
    Readout,
    SpikePool,
    SpikingGraph,
    read_only,
    validate,
)
from pseudosnn.compiler.spiking.synapses import block_kernel, global_pool_columns

from pseudosnn import __version__
from pseudosnn.errors import PseudoSNNError, UsageError

FORMAT_VERSION = 7
"""2: ``units_per_float`` (was ``scale``), the trained layers in ``meta``; 3: spike pools,
the input's event frames and analog stem; 4: and every population's dynamics (``du``,
``dv``, ``v_reset``, ``fire``); 5: projections' trained factors, arrays in their narrowest
exact type, bases shared with ``model.onnx``; 6: the readout's ``decay`` (a leaky readout),
every record field written (None where absent) and read without defaults; 7: a base
composed of trained layers with no neuron between stored as its recipe (a dict in place
of the array's key)."""
MANIFEST = "manifest.json"
GRAPH = "graph.json"
WEIGHTS = "weights.npz"
ONNX_FILE = "model.onnx"


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


PROJECTION_FIELDS = ("name", "source", "target", "kind", "stride", "padding", "groups",
                     "delay", "weight_exp")
ONNX_REF = "onnx:"


class ArrayStore:
    """The arrays of an artifact being written: each distinct content stored once; those
    found in ``shared`` (content key -> (key, location)) are located there instead."""

    def __init__(self, shared: dict[tuple, tuple[str, dict]] | None = None):
        self.arrays: dict[str, np.ndarray] = {}
        self.shared = dict(shared or {})
        self.located: dict[str, dict] = {}  # shared key -> location, of those used
        self._first: dict[tuple, str] = {}

    def put(self, key: str, a: np.ndarray) -> str:
        """Store ``a`` under ``key`` unless the same content is stored (or shared) already;
        returns where it lives."""
        a = _narrowest(np.asarray(a))
        content = _content_key(a)
        if content in self.shared:
            name, loc = self.shared[content]
            self.located[name] = loc
            return name
        where = self._first.setdefault(content, key)
        if where == key:
            self.arrays[key] = a
        return where


def _content_key(a: np.ndarray) -> tuple:
    return a.shape, a.dtype.str, hashlib.sha256(np.ascontiguousarray(a).data).digest()


def graph_to_records(graph: SpikingGraph, shared: dict[tuple, tuple[str, dict]] | None = None
                     ) -> tuple[dict, dict[str, np.ndarray]]:
    """Split a graph into a JSON-able description and a dict of named arrays. ``shared``:
    content key -> (``"onnx:<initializer>"``, location) of arrays stored in ``model.onnx``."""
    store = ArrayStore(shared)
    pops = []
    for p in graph.populations:
        rec = {k: v for k, v in asdict(p).items() if k not in ("timesteps", "bias")}
        rec["shape"] = list(p.shape)
        store.arrays[f"pop/{p.name}/timesteps"] = _narrowest(np.asarray(p.timesteps, np.int64))
        store.arrays[f"pop/{p.name}/bias"] = _narrowest(np.asarray(p.bias))
        pops.append(_plain(rec))
    projs = [_projection_record(graph, pr, store) for pr in graph.projections]
    ro = graph.readout
    store.arrays[f"readout/{ro.name}/bias"] = _narrowest(np.asarray(ro.bias))
    desc = {
        "input": input_record(graph.input, store),
        "pools": pool_records(graph.pools, store),
        "populations": pops,
        "readout": {"name": ro.name, "shape": list(ro.shape),
                    "units_per_float": ro.units_per_float, "decay": ro.decay},
        "projections": projs,
        "fixed_point": graph.fixed_point,
        "meta": _plain(graph.meta),
        "in_onnx": store.located,
    }
    return desc, store.arrays


def _projection_record(graph: SpikingGraph, pr: Projection, store: ArrayStore) -> dict:
    rec = {k: getattr(pr, k) for k in PROJECTION_FIELDS}
    rec["event_scale"] = None if pr.event_scale is None else \
        store.put(f"proj/{pr.name}/event_scale", pr.event_scale)
    rec["factors"] = rec["weight"] = rec["weight_block"] = rec["weight_spatial_repeat"] = None
    if pr.factors is not None:
        rec["factors"] = factors_record(pr, store)
        return _plain(rec)
    w = np.asarray(pr.weight)
    block = block_kernel(w, pr.stride) if pr.kind == "conv" else None
    per_channel = global_pool_columns(w, graph.shape_of(pr.source)) \
        if pr.kind == "dense" else None
    rec["weight_block"] = None if block is None else list(pr.stride)
    rec["weight_spatial_repeat"] = None if per_channel is None \
        else int(w.shape[1] // per_channel.shape[1])
    rec["weight"] = store.put(f"proj/{pr.name}/weight", block if block is not None
                              else per_channel if per_channel is not None else w)
    return _plain(rec)


def graph_from_records(desc: dict, arrays) -> SpikingGraph:
    """Inverse of :func:`graph_to_records` (``arrays``: key -> array, ``"onnx:..."`` keys
    included when a base lives in ``model.onnx``)."""
    pops = []
    for rec in desc["populations"]:
        name = rec["name"]
        pops.append(Population(
            name=name, shape=tuple(rec["shape"]),
            timesteps=_widened(arrays[f"pop/{name}/timesteps"]),
            threshold=rec["threshold"], bias=_widened(arrays[f"pop/{name}/bias"]),
            v0=rec["v0"], coupling=rec["coupling"], reset=rec["reset"],
            start=int(rec["start"]), units_per_float=float(rec["units_per_float"]),
            du=float(rec["du"]), dv=float(rec["dv"]), v_reset=rec["v_reset"], fire=rec["fire"],
        ))
    loaded = LoadedArrays(arrays)
    projs = [_projection_from_record(rec, loaded) for rec in desc["projections"]]
    ro = desc["readout"]
    return SpikingGraph(
        input=input_from_record(desc["input"], loaded),
        pools=pools_from_records(desc["pools"], loaded),
        populations=tuple(pops),
        readout=Readout(name=ro["name"], shape=tuple(ro["shape"]),
                        bias=_widened(arrays[f"readout/{ro['name']}/bias"]),
                        units_per_float=float(ro["units_per_float"]),
                        decay=float(ro["decay"])),
        projections=tuple(projs),
        fixed_point=bool(desc["fixed_point"]),
        meta=desc["meta"],
    )


class LoadedArrays:
    """Arrays by key, each made read-only once, so that projections storing the same key
    share one array (and the factorised summands of one layer share its base)."""

    def __init__(self, arrays):
        self.arrays = arrays
        self._seen: dict[str, np.ndarray] = {}

    def __call__(self, key: str, widen: bool = False) -> np.ndarray:
        if key not in self._seen:
            a = np.asarray(self.arrays[key])
            self._seen[key] = read_only(_widened(a) if widen else a)
        return self._seen[key]

    def composed(self, rec: dict) -> np.ndarray:
        """The weight of a composition record (:func:`composition_record`), composed once
        per distinct recipe, in its narrowest exact type (as a stored base is)."""
        key = json.dumps(rec, sort_keys=True)
        if key not in self._seen:
            self._seen[key] = read_only(_narrowest(_composed(rec, self)))
        return self._seen[key]


def _projection_from_record(rec: dict, loaded: LoadedArrays) -> Projection:
    common = dict(name=rec["name"], source=rec["source"], target=rec["target"],
                  kind=rec["kind"], stride=tuple(rec["stride"]), padding=tuple(rec["padding"]),
                  groups=int(rec["groups"]), delay=int(rec["delay"]),
                  weight_exp=int(rec["weight_exp"]),
                  event_scale=None if rec["event_scale"] is None
                  else loaded(rec["event_scale"], True))
    if rec["factors"] is not None:
        return Projection(**common, factors=factors_from_record(rec["factors"], loaded))
    weight = loaded(rec["weight"])
    if rec["weight_block"]:  # stored as its block kernel: expand, exactly
        s0, s1 = rec["weight_block"]
        weight = np.repeat(np.repeat(weight, s0, axis=2), s1, axis=3)
    if rec["weight_spatial_repeat"]:  # stored per channel: expand, exactly
        weight = np.repeat(weight, rec["weight_spatial_repeat"], axis=1)
    return Projection(**common, weight=weight)


def factors_record(pr: Projection, store: ArrayStore) -> dict:
    """The trained factors of ``pr`` (which has them); their arrays go to ``store``.
    ``base`` is the stored array's key, or for a composed base its recipe (a dict)."""
    f = pr.factors
    key = f"proj/{pr.name}/base"
    return _plain({
        "base": store.put(key, f.base) if f.composition is None
        else composition_record(f.composition, store, key),
        "pool": f.pool, "source_shape": list(f.source_shape),
        **{k: None if getattr(f, k) is None else store.put(f"proj/{pr.name}/{k}", getattr(f, k))
           for k in ("in_scale", "out_scale")}})


def factors_from_record(f: dict, loaded: LoadedArrays) -> Factors:
    """Inverse of :func:`factors_record`."""
    base = f["base"]
    return Factors(loaded.composed(base) if isinstance(base, dict) else loaded(base),
                   None if f["in_scale"] is None else loaded(f["in_scale"], True),
                   None if f["out_scale"] is None else loaded(f["out_scale"], True),
                   None if f["pool"] is None else tuple(tuple(v) for v in f["pool"]),
                   tuple(f["source_shape"]))


def composition_record(comp: Composition, store: ArrayStore, key: str) -> dict:
    """A composed weight as its recipe: the fusion, the shapes, the two nodes (op, attrs,
    params; a param array goes to ``store``, a composed weight is a nested recipe) and
    the sha256 of the weight, which loading checks."""
    def node(n: ir.Node, at: str) -> dict:
        nested = composition_of(n)
        params = {k: store.put(f"{at}/{k}", v) for k, v in n.params.items()
                  if v is not None and not (k == "weight" and nested)}
        if nested:
            params["weight"] = composition_record(nested, store, f"{at}/weight")
        attrs = {k: v for k, v in n.attrs.items() if k != "composition"}
        return {"name": n.name, "op": n.op, "attrs": _plain(attrs), "params": params}

    return {"fusion": comp.fusion, "shapes": _plain(comp.shapes),
            "outer": node(comp.outer, f"{key}/outer"), "inner": node(comp.inner, f"{key}/inner"),
            "sha256": _digest(comp.result)}


def _digest(w: np.ndarray) -> str:
    w = np.ascontiguousarray(w, np.float64)
    return hashlib.sha256(str(w.shape).encode() + w.data).hexdigest()


def _composed(rec: dict, loaded: LoadedArrays) -> np.ndarray:
    """Inverse of :func:`composition_record`: the weight composed again by the compiler's
    code (:meth:`Composition.weight`), checked against the stored digest."""
    def node(r: dict) -> ir.Node:
        params = {k: loaded.composed(v) if isinstance(v, dict) else loaded(v)
                  for k, v in r["params"].items()}
        return ir.Node(r["name"], r["op"], (ir.INPUT,), attrs=_tuples(r["attrs"]),
                       params=params)

    comp = Composition(rec["fusion"], node(rec["outer"]), node(rec["inner"]),
                       tuple(tuple(s) for s in rec["shapes"]), None)
    w = comp.weight()
    if _digest(w) != rec["sha256"]:
        raise ArtifactError(
            f"the composed weight of {rec['outer']['name']!r} came out different from the "
            "compiler's (another numerical library on this machine?); recompile the network "
            "here")
    return w


def _tuples(obj):
    """JSON lists back to tuples (node attrs: strides, paddings, pools)."""
    if isinstance(obj, dict):
        return {k: _tuples(v) for k, v in obj.items()}
    return tuple(_tuples(v) for v in obj) if isinstance(obj, list) else obj


def input_record(node: InputNode, store: ArrayStore) -> dict:
    """The input's description; the analog stem's arrays go to ``store``."""
    rec = {"name": node.name, "shape": list(node.shape), "frames": node.frames, "stem": None,
           "stem_arrays": None}
    if node.stem is not None:
        rec["stem"] = _plain({k: v for k, v in asdict(node.stem).items()
                              if k not in AnalogStem._ARRAYS})
        rec["stem_arrays"] = {key: store.put(f"stem/{key}", getattr(node.stem, key))
                              for key in AnalogStem._ARRAYS
                              if getattr(node.stem, key) is not None}
    return rec


def input_from_record(rec: dict, loaded: LoadedArrays) -> InputNode:
    """Inverse of :func:`input_record`."""
    stem = None
    if rec["stem"] is not None:
        s = {k: tuple(v) if isinstance(v, list) else v for k, v in rec["stem"].items()}
        stem = AnalogStem(**s, **{k: loaded(where, True)
                                  for k, where in rec["stem_arrays"].items()})
    return InputNode(shape=tuple(rec["shape"]), name=rec["name"],
                     frames=int(rec["frames"]), stem=stem)


def pool_records(pools, store: ArrayStore) -> list[dict]:
    """The spike pools' descriptions; their ``timesteps`` go to ``store``."""
    out = []
    for p in pools:
        store.arrays[f"pool/{p.name}/timesteps"] = _narrowest(np.asarray(p.timesteps, np.int64))
        out.append(_plain({k: v for k, v in asdict(p).items() if k != "timesteps"}))
    return out


def pools_from_records(records: list[dict], loaded: LoadedArrays) -> tuple[SpikePool, ...]:
    """Inverse of :func:`pool_records`."""
    return tuple(SpikePool(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in rec.items()},
                           timesteps=loaded(f"pool/{rec['name']}/timesteps", True))
                 for rec in records)


def _narrowest(a: np.ndarray) -> np.ndarray:
    """``a`` in the smallest type that holds every value exactly: signed integers (int8
    fixed-point weights take 1 byte instead of 8), float32 for floats that are all float32
    values (weights trained in float32)."""
    a = np.asarray(a)
    if a.size == 0:
        return a
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        for t in (np.int8, np.int16, np.int32):
            if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
                return a.astype(t)
        return a
    if a.dtype == np.float64:
        narrow = a.astype(np.float32)
        if np.array_equal(narrow.astype(np.float64), a):
            return narrow
    return a


def _widened(a: np.ndarray) -> np.ndarray:
    """Integers as int64 and floats as float64 (T, biases, scales: the arithmetic's types);
    weights and bases are not widened."""
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


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


def _onnx_initializers(model: bytes | None) -> dict[tuple, tuple[str, dict]]:
    """Content key -> (``"onnx:<name>"``, where its bytes lie in ``model``) of every float32
    initializer stored as raw data: the protobuf keeps raw bytes verbatim, in order."""
    if not model:
        return {}
    import onnx
    from onnx import numpy_helper

    found, pos = {}, 0
    for t in onnx.load_from_string(model).graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT or not t.raw_data:
            continue
        at = model.find(t.raw_data, pos)
        if at < 0:
            continue
        pos = at + len(t.raw_data)
        a = numpy_helper.to_array(t)
        found[_content_key(a)] = (f"{ONNX_REF}{t.name}", {
            "offset": at, "dtype": "<f4", "shape": list(a.shape)})
    return found


def _onnx_arrays(model: bytes, where: dict[str, dict]) -> dict[str, np.ndarray]:
    """The arrays ``where`` locates in the (hash-checked) ONNX file's bytes (no onnx
    import: the Lava venv reads artifacts too)."""
    out = {}
    for key, loc in where.items():
        count = int(np.prod(loc["shape"]))
        a = np.frombuffer(model, dtype=loc["dtype"], count=count, offset=int(loc["offset"]))
        out[key] = a.reshape(loc["shape"]).copy()
    return out


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
        onnx_model = (extra_files or {}).get(ONNX_FILE)
        desc, arrays = graph_to_records(graph, _onnx_initializers(onnx_model))
        write_atomic(tmp / GRAPH, json.dumps(desc, indent=1))
        write_atomic_with(tmp / WEIGHTS, lambda f: np.savez(f, **arrays))
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
            arrays = {k: npz[k] for k in npz.files}
        if desc.get("in_onnx"):
            arrays.update(_onnx_arrays((root / ONNX_FILE).read_bytes(), desc["in_onnx"]))
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
