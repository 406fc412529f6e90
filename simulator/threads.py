"""One knob for the simulator's threads: BLAS (numpy's GEMMs) and onnxruntime's sessions.

``threads=None`` (the default everywhere) means every core this process may run on
(``os.sched_getaffinity``); ``using(n)`` limits BLAS to ``n`` threads for a block (via
threadpoolctl) and tells the kernels how many intra-op threads their onnxruntime sessions
get. Results do not depend on the count: numpy's and onnxruntime's GEMMs split their work
over output blocks, never over a sum (measured bit-equal at 1 and 2 threads, both; the
float64 default is moreover checked against the reference at any count by the tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from pseudosnn.errors import PseudoSNNError

_CURRENT: ContextVar[int | None] = ContextVar("simulator_threads", default=None)


class ThreadsError(PseudoSNNError, ValueError):
    """A thread count that makes no sense (the message names the fix)."""


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve(threads: int | None) -> int:
    """``threads`` as a count: None or 0 is every core."""
    if threads is None or threads == 0:
        return cores()
    if threads < 0:
        raise ThreadsError(f"--threads must be >= 1 (or 0 for all cores), got {threads}")
    return int(threads)


def current() -> int:
    """The count in force (every core outside :func:`using`)."""
    n = _CURRENT.get()
    return cores() if n is None else n


@cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # finds the loaded BLAS libraries once


@contextmanager
def using(threads: int | None) -> Iterator[int]:
    """Run a block with ``threads`` BLAS threads (and as many for new onnxruntime sessions)."""
    n = resolve(threads)
    token = _CURRENT.set(n)
    try:
        with _controller().limit(limits=n, user_api="blas"):
            yield n
    finally:
        _CURRENT.reset(token)
