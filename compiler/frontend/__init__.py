"""Frontends: torch models and checkpoints (ours, safetensors, the paper's), ONNX files and
NIR files (``nir``: the outside libraries' dialects, ``nir_extension``: our own exports)
-> the compiler IR. The only part of the compiler that imports torch (lazily); the NIR
frontend needs only ``nir`` and h5py."""
