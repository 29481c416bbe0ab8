"""Editable and wheel installs both expose one ``paretoedge`` namespace.

The root folders search/, objectives/, hardware_profiles/ and configs/ are mapped into
``paretoedge.*`` at build time; none of them may become a top-level import name.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"search", "objectives", "hardware_profiles", "configs"}


def _source_packages() -> set[str]:
    """Every folder with an __init__.py, named as it is imported."""
    found = set()
    for init in ROOT.glob("**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        parts = rel.parts
        if not parts or parts[0] in {"tests", "bench", ".venv", "build", "docker"}:
            continue
        if parts[0] in MAPPED:
            found.add(".".join(("paretoedge", *parts)))
        elif parts[0] == "paretoedge":
            found.add(".".join(parts))
    return found


def test_every_package_is_listed_in_pyproject() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    assert _source_packages() <= listed, _source_packages() - listed


def test_editable_install_maps_root_folders() -> None:
    import paretoedge.configs
    import paretoedge.search

    assert Path(paretoedge.search.__file__).parent == ROOT / "search"
    assert Path(paretoedge.configs.__file__).parent == ROOT / "configs"


@pytest.mark.slow
def test_wheel_install_imports_and_has_no_stray_top_level(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("paretoedge-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"paretoedge"}
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "paretoedge/configs/quickstart.yaml" in names
    assert any(n.startswith("paretoedge/hardware_profiles/devices/") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import importlib, paretoedge\n"
        f"assert paretoedge.__file__.startswith({str(target)!r}), paretoedge.__file__\n"
        "for m in ('search', 'objectives', 'hardware_profiles', 'configs'):\n"
        "    mod = importlib.import_module('paretoedge.' + m)\n"
        f"    assert mod.__file__.startswith({str(target)!r}), mod.__file__\n"
        "from importlib.resources import files\n"
        "assert files('paretoedge.configs').joinpath('quickstart.yaml').is_file()\n"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
