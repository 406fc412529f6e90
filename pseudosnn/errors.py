"""The root of every user-facing error (DESIGN.md §5).

A :class:`PseudoSNNError` means the user can fix it: its message names the problem and the
fix, and the command line prints it as one line (exit code 1) instead of a traceback.
Subclasses keep their own names (``GraphError``, ``ArtifactError``, ...) and, where code
already catches them as such, the matching builtin base (``ValueError``, ``OSError``).
Anything else that escapes a command is a bug and keeps its traceback.
"""

from __future__ import annotations


class PseudoSNNError(Exception):
    """A mistake in the user's input, files or environment; the message says how to fix it."""


class UsageError(PseudoSNNError, ValueError):
    """An option value or combination that cannot work (exit code 2, like click's)."""

    exit_code = 2
