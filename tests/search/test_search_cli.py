"""The search commands are registered, documented, and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from paretoedge.cli import main
from paretoedge.search._cli import describe_spec


@pytest.mark.parametrize("command", ["search", "resume", "add-device"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--storage" in out


def test_search_commands_do_not_import_heavy_modules() -> None:
    code = (
        "import sys, paretoedge.cli\n"
        "paretoedge.cli.build_app()\n"
        "heavy = [m for m in ('torch', 'optuna', 'sqlalchemy', 'ray', 'tvm') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_ray_options_need_the_ray_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "quickstart", "--workers", "2"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_describe_spec() -> None:
    spec = {
        "prune.sparsity": 0.3,
        "heads.keep": 0.75,
        "quant.bits": 4,
        "quant.scheme": "cluster",
        "quant.layer_bits.ffn": 8,
        "recovery.steps": 6,
    }
    assert describe_spec(spec) == "sparsity 0.3 heads 0.75 int4 k-means ffn:8b"
    assert describe_spec({}) == "uncompressed"
