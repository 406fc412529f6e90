"""The command-line entry points: every registered command loads and explains itself."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pseudosnn.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name):
    res = CliRunner().invoke(main, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and len(res.output.splitlines()) > 5


def test_pseudosnn_compile_is_an_alias_of_compile():
    proc = subprocess.run([sys.executable, "-c", "from pseudosnn.cli import compile_main; "
                           "compile_main()", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: pseudosnn-compile [OPTIONS] MODEL")
    direct = CliRunner().invoke(main, ["compile", "--help"]).output

    def flags(text):
        return {w.rstrip(",") for w in text.split() if w.startswith("--")}

    assert flags(proc.stdout) == flags(direct) and "--fixed-point" in flags(direct)
