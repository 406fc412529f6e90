"""Command-line entry points: ``pseudosnn <command>`` and ``pseudosnn-compile``.

Subcommands live beside the code they drive and are imported only when invoked, so
``pseudosnn --help`` stays fast and the torch-free commands never import torch. Each
subcommand is a :class:`pseudosnn.cli_base.Command`: a user's mistake is one line.
"""

from __future__ import annotations

import importlib

import click

from pseudosnn import __version__

COMMANDS = {
    "train": ("pseudosnn.train_command", "train"),
    "compile": ("pseudosnn.compiler.command", "compile_cmd"),
    "simulate": ("pseudosnn.simulator.command", "simulate_cmd"),
    "run": ("pseudosnn.backends.command", "run"),
    "energy-check": ("pseudosnn.energy_check_command", "energy_check"),
    "export": ("pseudosnn.backends.export_command", "export_cmd"),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pseudosnn")
def main() -> None:
    """PseudoSNN toolchain: train heterogeneous-latency spiking networks, compile them to an
    event-driven spiking graph, and deploy them on Lava or the cycle-accurate simulator.

    \b
    Typical session:
      pseudosnn train --config configs/digits/cnn.yaml
      pseudosnn-compile runs/digits-cnn/last.pth --target lava -o build/cnn
      pseudosnn simulate build/cnn --data digits --report reports/cnn
      pseudosnn run build/cnn --target lava --samples 20
      pseudosnn energy-check runs/digits-cnn/last.pth --data digits
      pseudosnn export build/cnn --format nir -o cnn.nir
      pseudosnn-compile snn.nir --from snntorch --timesteps 20 -o build/snn
    """


def compile_main() -> None:
    """``pseudosnn-compile``: the same command as ``pseudosnn compile``."""
    module, attr = COMMANDS["compile"]
    getattr(importlib.import_module(module), attr)(prog_name="pseudosnn-compile")


if __name__ == "__main__":
    main()
