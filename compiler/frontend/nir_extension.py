"""The ``pseudosnn`` extension of a NIR file: what plain NIR cannot say, read back exactly.

Plain NIR has no subtractive reset, no start potential, no per-neuron or per-layer windows,
no rate coupling, no synaptic delays and no per-event scales. Our exporter
(``backends/nir_backend.py``) writes every graph node for node *and* this extension, in the
metadata NIR 1.0.x stores with every node (flat keys, other readers ignore them):

* graph metadata ``pseudosnn_format`` (:data:`FORMAT`), ``pseudosnn_graph`` (JSON: the input
  with its event frames and analog stem, the spike pools, every population and projection
  record without its arrays and with the NIR node that holds it, the readout,
  ``fixed_point``, ``meta``), ``pseudosnn_readout_bias`` (array), the input's and pools'
  arrays (``pseudosnn_array_<i>``, named in the JSON; the artifact's records,
  :func:`~pseudosnn.compiler.artifact.input_record`) and ``pseudosnn_digest``
  (:func:`digest` of the plain nodes as written);
* a population's node: ``pseudosnn_timesteps`` and ``pseudosnn_bias`` (arrays);
* a projection's node: its ``weight`` is the projection's weight exactly (dense
  ``(target, source)``; conv ``(C_out, C_in, kh, kw)``, a grouped conv written as the
  equal ungrouped one, zeros outside its groups: :func:`ungrouped`, since nir 1.0.8's type
  inference ignores ``groups``), plus
  ``pseudosnn_event_scale`` when it has one; a projection the plain graph replaces by an
  edge (an identity readout) is recorded with ``"node": null`` and its weight; one with
  trained factors keeps them (its record names their arrays) and its node holds their
  composition.

:func:`decode` rebuilds the spiking graph from the extension and the nodes' weights:
``ours -> NIR -> ours`` is the identity. A file whose plain nodes were changed after export
(another tool) no longer matches its digest and is refused: read it with ``--from nir``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from pseudosnn.compiler.artifact import (
    PROJECTION_FIELDS,
    ArrayStore,
    LoadedArrays,
    factors_from_record,
    factors_record,
    input_from_record,
    input_record,
    pool_records,
    pools_from_records,
)
from pseudosnn.compiler.spiking.graph import (
    Population,
    Projection,
    Readout,
    SpikingGraph,
)

from pseudosnn.errors import PseudoSNNError

FORMAT = "pseudosnn.nir/2"
"""1: populations, projections, readout; 2: and the input's frames and stem, spike pools."""
KEY_FORMAT, KEY_GRAPH, KEY_DIGEST = "pseudosnn_format", "pseudosnn_graph", "pseudosnn_digest"
KEY_READOUT_BIAS, KEY_ARRAY = "pseudosnn_readout_bias", "pseudosnn_array_"
KEY_T, KEY_BIAS, KEY_EVENT_SCALE = "pseudosnn_timesteps", "pseudosnn_bias", "pseudosnn_event_scale"
_POP_ARRAYS = ("timesteps", "bias")


class NirExtensionError(PseudoSNNError, ValueError):
    """A file whose ``pseudosnn`` extension is broken or no longer matches its nodes."""


def ungrouped(w: np.ndarray, groups: int) -> np.ndarray:
    """The ``groups = 1`` kernel equal to grouped kernel ``w`` (zeros between groups)."""
    if groups == 1:
        return w
    co, cg = w.shape[:2]
    og = co // groups
    full = np.zeros((co, cg * groups, *w.shape[2:]), dtype=w.dtype)
    for k in range(groups):
        full[k * og:(k + 1) * og, k * cg:(k + 1) * cg] = w[k * og:(k + 1) * og]
    return full


def regrouped(full: np.ndarray, groups: int) -> np.ndarray:
    """Inverse of :func:`ungrouped`."""
    if groups == 1:
        return full
    co, cin = full.shape[:2]
    og, cg = co // groups, cin // groups
    return np.concatenate([full[k * og:(k + 1) * og, k * cg:(k + 1) * cg]
                           for k in range(groups)])


def has_extension(g) -> bool:
    return isinstance(getattr(g, "metadata", None), dict) and KEY_FORMAT in g.metadata


def digest(g) -> str:
    """sha256 over every plain node's numeric parameters (key order, float64 bytes): what
    a reader without the extension computes with."""
    h = hashlib.sha256()
    for key in sorted(g.nodes):
        node = g.nodes[key]
        h.update(f"{key}:{type(node).__name__};".encode())
        for name in sorted(vars(node)):
            value = vars(node)[name]
            if name in ("metadata", "input_type", "output_type") or isinstance(value, dict):
                continue
            a = np.asarray(value)
            if a.dtype.kind in "biuf":
                h.update(name.encode())
                h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


def _json(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


def _stored(a, dtype) -> np.ndarray:
    """At least 1-D (HDF5 compresses no scalar dataset); the record keeps the shape."""
    return np.atleast_1d(np.asarray(a, dtype))


def encode(graph: SpikingGraph, pop_nodes: dict[str, str], proj_nodes: dict[str, str | None],
           dt: float) -> tuple[dict, dict[str, dict]]:
    """``(graph metadata, node key -> node metadata)`` of ``graph`` exported with its
    populations in ``pop_nodes`` and projections in ``proj_nodes`` (None: no node; the
    weight then goes into the record). The digest is added by the exporter once the plain
    nodes exist (:func:`digest`)."""
    pops, node_meta, store = [], {}, ArrayStore()
    for p in graph.populations:
        rec = {k: v for k, v in asdict(p).items() if k not in _POP_ARRAYS}
        pops.append({**rec, "shape": list(p.shape), "node": pop_nodes[p.name],
                     "array_shapes": [list(np.shape(p.timesteps)), list(np.shape(p.bias))]})
        node_meta[pop_nodes[p.name]] = {KEY_T: _stored(p.timesteps, np.int64),
                                        KEY_BIAS: _stored(p.bias, np.float64)}
    projs = []
    for pr in graph.projections:
        rec = {k: getattr(pr, k) for k in PROJECTION_FIELDS}  # the arrays go elsewhere
        key = proj_nodes[pr.name]
        rec.update(node=key, weight=None if key or pr.factors else np.asarray(pr.weight),
                   factors=None if pr.factors is None else factors_record(pr, store),
                   event_scale_shape=None if pr.event_scale is None
                   else list(np.shape(pr.event_scale)))
        projs.append(rec)
        if pr.event_scale is not None:
            node_meta.setdefault(key, {})[KEY_EVENT_SCALE] = _stored(pr.event_scale,
                                                                     np.float64)
    ro = graph.readout
    desc = {"input": input_record(graph.input, store),
            "pools": pool_records(graph.pools, store),
            "populations": pops, "projections": projs,
            "readout": {"name": ro.name, "shape": list(ro.shape),
                        "units_per_float": ro.units_per_float, "decay": ro.decay},
            "fixed_point": graph.fixed_point, "meta": graph.meta, "dt": dt,
            "arrays": [[name, list(np.shape(a)), np.asarray(a).dtype.str]
                       for name, a in store.arrays.items()]}
    meta = {KEY_FORMAT: FORMAT, KEY_GRAPH: json.dumps(desc, default=_json),
            KEY_READOUT_BIAS: np.asarray(ro.bias, np.float64),
            **{f"{KEY_ARRAY}{i}": _stored(a, np.asarray(a).dtype)
               for i, a in enumerate(store.arrays.values())}}
    return meta, node_meta


def decode(g, path: Path | str = "the file") -> SpikingGraph:
    """The spiking graph our exporter wrote into ``g`` (module docstring)."""
    meta = g.metadata
    if meta.get(KEY_FORMAT) != FORMAT:
        raise NirExtensionError(f"{path}: pseudosnn extension {meta.get(KEY_FORMAT)!r} is not "
                                f"{FORMAT!r} (written by another version); read it with "
                                "--from nir --dt DT")
    if meta.get(KEY_DIGEST) != digest(g):
        raise NirExtensionError(f"{path}: the NIR nodes were changed after pseudosnn exported "
                                "them (their digest differs), so its extension no longer "
                                "describes them; read the plain nodes with --from nir --dt DT")
    try:
        desc = json.loads(meta[KEY_GRAPH])
        return _graph(g, desc, meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise NirExtensionError(f"{path}: the pseudosnn extension is incomplete "
                                f"({type(exc).__name__}: {exc})") from exc


def _graph(g, desc: dict, meta: dict) -> SpikingGraph:
    pops = []
    for rec in desc["populations"]:
        arrays = g.nodes[rec["node"]].metadata
        t_shape, b_shape = rec["array_shapes"]
        fields = {k: v for k, v in rec.items() if k not in ("node", "shape", "array_shapes")}
        pops.append(Population(**fields, shape=tuple(rec["shape"]),
                               timesteps=np.asarray(arrays[KEY_T], np.int64).reshape(t_shape),
                               bias=np.asarray(arrays[KEY_BIAS], np.float64).reshape(b_shape)))
    loaded = LoadedArrays({name: np.asarray(meta[f"{KEY_ARRAY}{i}"], dtype).reshape(shape)
                           for i, (name, shape, dtype) in enumerate(desc["arrays"])})
    projs = []
    for rec in desc["projections"]:
        key = rec["node"]
        node = g.nodes[key] if key else None
        factors = rec["factors"]
        # with trained factors the node holds their composition: the factors are kept
        weight = {"factors": factors_from_record(factors, loaded)} if factors else \
            {"weight": np.asarray(rec["weight"])} if node is None else \
            {"weight": regrouped(np.asarray(node.weight), int(rec["groups"]))
             if rec["kind"] == "conv" else np.asarray(node.weight)}
        es_shape = rec["event_scale_shape"]
        es = None if es_shape is None else np.asarray(node.metadata[KEY_EVENT_SCALE],
                                                      np.float64).reshape(es_shape)
        fields = {k: v for k, v in rec.items()
                  if k not in ("node", "weight", "factors", "event_scale_shape")}
        projs.append(Projection(**{**fields, "stride": tuple(fields["stride"]),
                                   "padding": tuple(fields["padding"])},
                                **weight, event_scale=es))
    ro = desc["readout"]
    return SpikingGraph(
        input_from_record(desc["input"], loaded), tuple(pops),
        Readout(ro["name"], tuple(ro["shape"]), np.asarray(meta[KEY_READOUT_BIAS]),
                float(ro["units_per_float"]), float(ro["decay"])),
        tuple(projs), fixed_point=bool(desc["fixed_point"]), meta=desc["meta"],
        pools=pools_from_records(desc["pools"], loaded))
