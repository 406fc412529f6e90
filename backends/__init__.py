"""Deployment targets: one module per backend behind the small protocol in ``base``.
Torch-free (DESIGN.md §3)."""

# Run from the repository root, `import backends` would load a second copy of every module:
# the folder installs as pseudosnn.backends (DESIGN.md §3).
if __name__ != "pseudosnn.backends":
    raise ImportError(f"import pseudosnn.backends, not {__name__} (pip install -e . first)")

