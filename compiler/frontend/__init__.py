"""Frontends: torch models and checkpoints (ours, safetensors, the paper's) and ONNX files
-> the compiler IR. The only part of the compiler that imports torch (lazily)."""
