"""Cycle-accurate NumPy simulator of the spiking graph, energy models and reports.
Torch-free (DESIGN.md §3)."""
