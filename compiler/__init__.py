"""Compiler: checkpoint -> ONNX-based IR -> passes -> event-driven spiking graph.

Torch-free below the frontend (DESIGN.md §3): ``graph``, ``semantics``, ``artifact``,
``reference`` and the passes import numpy and networkx only.
"""

# Run from the repository root, `import compiler` would load a second copy of every module:
# the folder installs as pseudosnn.compiler (DESIGN.md §3).
if __name__ != "pseudosnn.compiler":
    raise ImportError(f"import pseudosnn.compiler, not {__name__} (pip install -e . first)")

