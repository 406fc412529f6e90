"""The click command class of every ``pseudosnn`` subcommand.

A :class:`~pseudosnn.errors.PseudoSNNError` raised by a command (a user's mistake) is
printed as one line ``Error: ...`` with exit code 1 (2 for a usage error), as is an
``OSError`` on a file the user named (permissions, disk full); anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import math

import click

from pseudosnn.errors import PseudoSNNError


class UserError(click.ClickException):
    """A user-facing error on its way to the terminal: one line, no traceback."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class Command(click.Command):
    """``click.Command`` that turns user-facing errors into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PseudoSNNError as exc:
            raise UserError(str(exc), getattr(exc, "exit_code", 1)) from exc
        except OSError as exc:
            raise UserError(str(exc)) from exc


class FiniteFloat(click.FloatRange):
    """A float option in a range that also refuses NaN and Inf (``click.FloatRange`` lets
    NaN through: every comparison with NaN is false)."""

    name = "finite float"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv
