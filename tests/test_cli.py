"""The command line itself: help, version, both entry points."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ideagen import __version__
from ideagen.cli import main

COMMANDS = ["brainstorm", "evolve", "chat", "review", "dedup", "validate", "template"]


def test_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    assert "--home" in out


def test_version_and_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ideagen", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"ideagen {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_its_own_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"ideagen {command}" in capsys.readouterr().out
