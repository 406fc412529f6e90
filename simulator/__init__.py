"""Cycle-accurate NumPy simulator of the spiking graph, energy models and reports.
Torch-free (DESIGN.md §3).

* ``engine.simulate(graph, x, record_spikes=False, fixed_point=None, precision="float64")``
  runs a batch step by step on the global clock and returns ``backends.base.RunResult``
  (also behind ``backends.numpy_backend.NumpyBackend``); ``kernels`` holds its GEMM kernels.
* ``energy``: the energy model (every hardware constant with its source; presets
  ``compute-only``, ``45nm``, ``lemaire``, ``loihi``; a user's chip from YAML), per deployed
  layer by term, and the trained network as full and quantised ANNs on the same chip.
* ``metrics.tally`` (exact totals that merge across batches and processes),
  ``metrics.report`` (per-layer report, table, JSON, CSV), ``plots`` (PNG), ``sharding``
  (batches across processes), ``datasets`` (``digits``, ``cifar10:PATH``, ``npz:PATH``).
* ``command``: ``pseudosnn simulate ARTIFACT... --data SPEC [--report DIR] ...``.
"""

# Run from the repository root, `import simulator` would load a second copy of every module:
# the folder installs as pseudosnn.simulator (DESIGN.md §3).
if __name__ != "pseudosnn.simulator":
    raise ImportError(f"import pseudosnn.simulator, not {__name__} (pip install -e . first)")

