"""Compiler: checkpoint -> ONNX-based IR -> passes -> event-driven spiking graph.

Torch-free below the frontend (DESIGN.md §3): ``graph``, ``semantics``, ``artifact``,
``reference`` and the passes import numpy and networkx only.
"""
