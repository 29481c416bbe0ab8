"""Editable and wheel installs both expose one ``paretoedge`` namespace.

The root folders search/, objectives/, hardware_profiles/ and configs/ are mapped into
``paretoedge.*`` at build time; none of them may become a top-level import name.
"""

from __future__ import annotations

import re
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


def _requires(metadata: str) -> dict[str | None, set[str]]:
    """Requires-Dist of a METADATA file: extra (None for the base) -> distribution names."""
    out: dict[str | None, set[str]] = {}
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        name = re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()
        match = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        out.setdefault(match.group(1) if match else None, set()).add(name)
    return out


def test_base_install_is_the_kit_and_the_search_is_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0] for r in project["dependencies"]}
    assert base == {"numpy"}
    extras = project["optional-dependencies"]
    assert {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0] for r in extras["measure"]} == {
        "onnxruntime"
    }
    search = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0] for r in extras["search"]}
    assert {"torch", "apache-tvm", "optuna", "typer", "sqlalchemy"} <= search
    assert project["scripts"]["paretoedge"] == "paretoedge._entry:main"
    # every install line of the full stack names the search extra and keeps the torch pin
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install -q -e '\.\[search,[^']*\]' \$\(TORCH\)", makefile)
    assert "TORCH := torch==2.13.0" in makefile
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "[search,postgres,ray,api]" in dockerfile and "torch==2.13.0" in dockerfile


def test_entry_without_the_search_stack_runs_only_the_kit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from paretoedge import _entry

    monkeypatch.setattr(_entry, "missing_search_modules", lambda: ["typer", "torch"])
    assert _entry.main(["studies"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: paretoedge studies needs the search stack: typer is not installed: "
        "install it with pip install 'paretoedge[search]'\n"
    )
    assert _entry.main([]) == 2
    assert "pip install 'paretoedge[search]'" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        _entry.main(["measure", "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: paretoedge measure")
    # a kit error is one line and exit 2 there too
    assert _entry.main(["measure", "x.onnx", "--threads", "0", "--out", "t.csv"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_entry_with_the_search_stack_is_the_full_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from paretoedge import _entry

    assert _entry.missing_search_modules() == []
    assert _entry.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "search" in out and "measure" in out and "front" in out


@pytest.mark.slow
def test_wheel_runs_the_kit_with_numpy_alone(tmp_path: Path) -> None:
    """The wheel without dependencies, in an interpreter that sees nothing but numpy."""
    import numpy

    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("paretoedge-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        requires = _requires(zf.read(meta).decode())
    assert requires[None] == {"numpy"}
    assert requires["measure"] == {"onnxruntime"}
    assert {"torch", "apache-tvm", "optuna"} <= requires["search"]

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    only_numpy = tmp_path / "numpy-only"
    only_numpy.mkdir()
    site = Path(numpy.__file__).parents[1]
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (only_numpy / name).symlink_to(site / name)
    # -S: no site-packages, so torch, typer, TVM... cannot be found; PYTHONPATH adds the wheel
    # and numpy only
    env = {"PYTHONPATH": f"{target}:{only_numpy}", "PATH": "/usr/bin:/bin"}

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", "-c", code], env=env, cwd=tmp_path, capture_output=True,
            text=True,
        )  # fmt: skip

    proc = run("import runpy, sys; sys.argv = ['x', '--help']; "
               "runpy.run_module('paretoedge.measure', run_name='__main__')")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "python -m paretoedge.measure" in proc.stdout
    proc = run(
        "import sys, paretoedge._entry as e\n"
        f"assert e.__file__.startswith({str(target)!r}), e.__file__\n"
        "assert 'typer' in e.missing_search_modules() and 'torch' in e.missing_search_modules()\n"
        "sys.exit(e.main(['measure', '--help']))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: paretoedge measure")
    proc = run("import sys, paretoedge._entry as e; sys.exit(e.main(['search', 'quickstart']))")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("install it with pip install 'paretoedge[search]'")
    assert proc.stderr.count("\n") == 1
