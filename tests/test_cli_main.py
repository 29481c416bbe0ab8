"""The CLI's contract: user errors are one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from paretoedge.cli import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out


def test_unknown_command_is_usage_error() -> None:
    assert main(["no-such-command"]) == 2


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "paretoedge.cli", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "paretoedge" in proc.stdout
