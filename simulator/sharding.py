"""Simulate a data set in fixed batches: in this process, across local processes, or on a
Ray cluster.

The data are cut into the same batches whatever runs them; every batch gives an exact
:class:`Tally` and the main process merges them in batch order, so one process, N processes
and a cluster give the same counts and outputs, bit for bit. Batches are read from ``x``
(an array or a lazy :class:`~pseudosnn.simulator.datasets.Samples`) only when due, at most
a few per worker ahead, so memory holds a few batches, not the data set. Local workers are
started with ``spawn`` (no forked BLAS/onnxruntime thread pools). On Ray (``cluster="ray"``
starts a local instance, ``"ray:ADDRESS"`` joins a running cluster, e.g. ``ray:auto`` on a
cluster node or ``ray:ray://HEAD:10001`` from outside), the graph is put into the object
store once and each batch is one task.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from pseudosnn.compiler.spiking.graph import SpikingGraph
from pseudosnn.simulator import threads as _threads
from pseudosnn.simulator.engine import simulate
from pseudosnn.simulator.metrics.tally import Tally

from pseudosnn.errors import PseudoSNNError, UsageError

RAY = "ray"
IN_FLIGHT_PER_WORKER = 2
"""Batches read ahead per worker (process or Ray): one running, one waiting (the transfer
of the next overlaps the current one; more would only hold memory)."""

Job = tuple[np.ndarray, np.ndarray | None]


class ClusterError(PseudoSNNError, RuntimeError):
    """Ray is missing or the cluster cannot be reached (the message names the fix)."""


@dataclass(frozen=True)
class Options:
    """How each batch is simulated (the same everywhere it runs)."""

    fixed_point: bool | None = None
    precision: str = "float64"
    threads: int | None = None

    def run(self, graph: SpikingGraph, x: np.ndarray, y: np.ndarray | None) -> Tally:
        res = simulate(graph, x, fixed_point=self.fixed_point, precision=self.precision,
                       threads=self.threads)
        return Tally().add(res, y)


def parse_cluster(spec: str | None) -> str | None:
    """``"ray"`` -> ``""`` (a local Ray instance), ``"ray:ADDRESS"`` -> ``ADDRESS``,
    None -> None (no cluster)."""
    if spec is None:
        return None
    kind, sep, address = spec.partition(":")
    if kind != RAY or (sep and not address):
        raise UsageError(f"unknown cluster {spec!r}; use 'ray' (a local Ray instance) or "
                         "'ray:ADDRESS' (e.g. ray:auto, ray:ray://HEAD:10001)")
    return address


def batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def batch_jobs(x: np.ndarray, y: np.ndarray | None, batch_size: int) -> Iterator[Job]:
    for a, b in batches(len(x), batch_size):
        yield x[a:b], None if y is None else y[a:b]


_worker: tuple[SpikingGraph, Options] | None = None


def _init_worker(graph: SpikingGraph, options: Options) -> None:
    global _worker
    _worker = (graph, options)


def _run_batch(job: Job) -> Tally:
    graph, options = _worker
    return options.run(graph, *job)


def _pool_tallies(graph: SpikingGraph, jobs: Iterable[Job], workers: int,
                  options: Options) -> Iterator[Tally]:
    ctx = mp.get_context("spawn")
    jobs = iter(jobs)
    ahead = IN_FLIGHT_PER_WORKER * workers
    with ctx.Pool(workers, initializer=_init_worker, initargs=(graph, options)) as pool:
        # Pool.imap would read every batch at once: feed it windows of a few batches
        while window := list(itertools.islice(jobs, ahead)):
            yield from pool.imap(_run_batch, window)


def _ray_batch(graph: SpikingGraph, options: Options, x: np.ndarray,
               y: np.ndarray | None) -> Tally:
    """One Ray task: a batch (the graph comes from the object store, shared)."""
    return options.run(graph, x, y)


def _ray_tallies(graph: SpikingGraph, jobs: Iterable[Job], address: str, workers: int,
                 options: Options) -> Iterator[Tally]:
    """Tallies in batch order, each batch a Ray task needing ``options.threads`` CPUs."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("--cluster ray needs Ray: pip install 'pseudosnn[cluster]'") from exc
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address or None, num_cpus=None if address else workers,
                     include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {exc}; start "
                               "it with `ray start --head` or check the address") from exc
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        per_task = _threads.resolve(options.threads)
        task = ray.remote(num_cpus=min(per_task, cpus))(_ray_batch)
        graph_ref, window = ray.put(graph), max(1, cpus // per_task) * IN_FLIGHT_PER_WORKER
        pending: dict[int, object] = {}
        jobs = iter(jobs)
        n_sent = n_done = 0
        while True:
            while len(pending) < window and (job := next(jobs, None)) is not None:
                pending[n_sent] = task.remote(graph_ref, options, *job)
                n_sent += 1
            if not pending:
                return
            yield ray.get(pending.pop(n_done))  # in batch order: the merge is exact
            n_done += 1
    finally:
        if started:
            ray.shutdown()


def iter_batch_tallies(
    graph: SpikingGraph, x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 64,
    workers: int | None = None, fixed_point: bool | None = None, precision: str = "float64",
    threads: int | None = None, cluster: str | None = None,
) -> Iterator[Tally]:
    """Yield one :class:`Tally` per batch, in batch order. ``workers``: local processes
    (default 1), or the CPUs of a local Ray instance (default all). ``threads`` per batch
    (None: every core in one process, ``cores // workers`` in a pool, 1 per Ray task)."""
    jobs = batch_jobs(x, y, batch_size)
    address = parse_cluster(cluster)
    if address is not None:
        options = Options(fixed_point, precision, 1 if threads is None else threads)
        yield from _ray_tallies(graph, jobs, address, workers or _threads.cores(), options)
        return
    workers = workers or 1
    n_jobs = len(batches(len(x), batch_size))
    if workers <= 1 or n_jobs <= 1:
        options = Options(fixed_point, precision, threads)
        for xb, yb in jobs:
            yield options.run(graph, xb, yb)
        return
    per_worker = max(1, _threads.cores() // workers) if threads is None else threads
    yield from _pool_tallies(graph, jobs, min(workers, n_jobs),
                             Options(fixed_point, precision, per_worker))


def simulate_dataset(
    graph: SpikingGraph, x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 64,
    workers: int | None = None, fixed_point: bool | None = None,
    on_batch: Callable[[int], None] | None = None, precision: str = "float64",
    threads: int | None = None, cluster: str | None = None,
) -> Tally:
    """Simulate every sample; ``on_batch(n_samples)`` after each batch (progress bars)."""
    total = Tally()
    for part in iter_batch_tallies(graph, x, y, batch_size, workers, fixed_point, precision,
                                   threads, cluster):
        total.merge(part)
        if on_batch is not None:
            on_batch(part.samples)
    return total
