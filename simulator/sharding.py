"""Simulate a data set in fixed batches, in one process or sharded across processes.

The data are cut into the same batches whatever the number of workers; workers simulate
whole batches and the main process merges their exact :class:`Tally` s in batch order.
So one process and N processes give the same counts and outputs, bit for bit.
Workers are started with the ``spawn`` method (no forked BLAS thread pools). Batches are
read from ``x`` (an array or a lazy :class:`~pseudosnn.simulator.datasets.Samples`) only
when due, at most ``2 * workers`` ahead, so memory holds a few batches, not the data set.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator

import numpy as np
from pseudosnn.compiler.spiking.graph import SpikingGraph
from pseudosnn.simulator.engine import simulate
from pseudosnn.simulator.metrics.tally import Tally

_worker_graph: SpikingGraph | None = None
_worker_fixed: bool | None = None
_worker_precision = "float64"


def batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def _init_worker(graph: SpikingGraph, fixed_point: bool | None, precision: str) -> None:
    global _worker_graph, _worker_fixed, _worker_precision
    _worker_graph, _worker_fixed, _worker_precision = graph, fixed_point, precision


def _run_batch(args: tuple[np.ndarray, np.ndarray | None]) -> Tally:
    x, y = args
    res = simulate(_worker_graph, x, fixed_point=_worker_fixed, precision=_worker_precision)
    return Tally().add(res, y)


def iter_batch_tallies(
    graph: SpikingGraph, x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 64,
    workers: int = 1, fixed_point: bool | None = None, precision: str = "float64",
) -> Iterator[Tally]:
    """Yield one :class:`Tally` per batch, in batch order."""
    spans = batches(len(x), batch_size)

    def jobs(part):  # read lazily: a batch is loaded when it is due
        return ((x[a:b], None if y is None else y[a:b]) for a, b in part)

    if workers <= 1 or len(spans) <= 1:
        for xb, yb in jobs(spans):
            yield Tally().add(simulate(graph, xb, fixed_point=fixed_point, precision=precision),
                              yb)
        return
    ctx = mp.get_context("spawn")
    ahead = 2 * workers  # Pool.imap would read every batch at once: feed windows
    with ctx.Pool(min(workers, len(spans)), initializer=_init_worker,
                  initargs=(graph, fixed_point, precision)) as pool:
        for i in range(0, len(spans), ahead):
            yield from pool.imap(_run_batch, jobs(spans[i:i + ahead]))


def simulate_dataset(
    graph: SpikingGraph, x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 64,
    workers: int = 1, fixed_point: bool | None = None,
    on_batch: Callable[[int], None] | None = None, precision: str = "float64",
) -> Tally:
    """Simulate every sample; ``on_batch(n_samples)`` after each batch (progress bars)."""
    total = Tally()
    for part in iter_batch_tallies(graph, x, y, batch_size, workers, fixed_point, precision):
        total.merge(part)
        if on_batch is not None:
            on_batch(part.samples)
    return total
