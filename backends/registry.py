"""Backends by name, imported lazily (a backend's dependencies load only when used)."""

from __future__ import annotations

import importlib

BACKENDS: dict[str, str] = {
    "numpy": "pseudosnn.backends.numpy_backend:NumpyBackend",
    "lava": "pseudosnn.backends.lava_backend:LavaBackend",
    "onnx": "pseudosnn.backends.onnx_backend:OnnxBackend",
}


class UnknownBackend(ValueError):
    """A target name that is not in :data:`BACKENDS`."""


def get_backend(name: str):
    """An instance of the backend registered as ``name``."""
    if name not in BACKENDS:
        raise UnknownBackend(f"unknown target {name!r}; known: {', '.join(BACKENDS)}")
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)()
