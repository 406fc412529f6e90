"""PseudoSNN toolchain: train, compile and deploy heterogeneous-latency SNNs.

This package root imports nothing heavy: ``pseudosnn.compiler``, ``pseudosnn.simulator``
and ``pseudosnn.backends`` must stay importable without torch (DESIGN.md §3).
"""

__version__ = "0.1.0"
