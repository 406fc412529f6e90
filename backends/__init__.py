"""Deployment targets: one module per backend behind the small protocol in ``base``.
Torch-free (DESIGN.md §3)."""
