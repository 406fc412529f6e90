"""Backends by name, imported lazily (a backend's dependencies load only when used).
Every command gets its backend here; ``backend(name, artifact=DIR)`` lets a backend use
what the artifact holds (the Lava entry point, the trained ONNX model). Exporters (targets
that only write a file for other tools, e.g. NIR) are :data:`EXPORTERS`."""

from __future__ import annotations

import importlib
from pathlib import Path

from pseudosnn.compiler.spiking.backend import Backend

from pseudosnn.errors import PseudoSNNError

BACKENDS: dict[str, str] = {
    "numpy": "pseudosnn.backends.numpy_backend:NumpyBackend",
    "lava": "pseudosnn.backends.lava_backend:LavaBackend",
    "onnx": "pseudosnn.backends.onnx_backend:OnnxBackend",
}

EXPORTERS: dict[str, str] = {
    "nir": "pseudosnn.backends.nir_backend:NirExporter",
}
"""``pseudosnn export --format NAME``: objects with a ``name``, ``export(graph)`` (the
format's graph, with ``lossy``: why a plain reader would compute another network) and
``to_bytes(exported)``."""


class UnknownBackend(PseudoSNNError, ValueError):
    """A target name that is not in :data:`BACKENDS`."""


def backend_class(name: str, registry: dict[str, str] = BACKENDS) -> type:
    if name not in registry:
        raise UnknownBackend(f"unknown target {name!r}; known targets: {', '.join(registry)}")
    module, attr = registry[name].split(":")
    return getattr(importlib.import_module(module), attr)


def get_backend(name: str, artifact: str | Path | None = None, **options) -> Backend:
    """An instance of the backend registered as ``name`` (``options`` go to its
    constructor; with ``artifact``, its ``from_artifact`` when it has one)."""
    cls = backend_class(name)
    if artifact is not None and hasattr(cls, "from_artifact"):
        return cls.from_artifact(artifact, **options)
    return cls(**options)


def get_exporter(name: str, **options):
    """An instance of the exporter registered as ``name`` (``options`` to its constructor)."""
    return backend_class(name, EXPORTERS)(**options)
