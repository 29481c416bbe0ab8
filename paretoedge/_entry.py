"""The ``paretoedge`` console script: the full CLI, or the measuring kit on a bare install.

``pip install paretoedge`` (or ``paretoedge[measure]``, what a board needs) installs numpy
and, with the extra, onnxruntime: not typer, torch, TVM or Optuna, which the search needs
and which come with ``paretoedge[search]``. This entry point checks, without importing
anything heavy, that the search stack is importable; when it is not, ``paretoedge
measure ...`` runs the kit's own argparse front end and every other command fails with one
line naming the install, exit code 2, instead of an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib.util
import sys

from paretoedge.errors import MissingExtraError

#: import names the full command line needs (the ``search`` extra installs them all)
SEARCH_MODULES = (
    "typer",
    "rich",
    "yaml",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "alembic",
    "optuna",
    "scipy",
    "onnx",
    "onnxruntime",
    "torch",
    "transformers",
    "tvm",
)

_KIT_HELP = """\
usage: paretoedge measure FILES... --out timings.csv [--runtime R] [--threads N] [--repeats R]

This is the measuring kit's install (pip install 'paretoedge[measure]'): only `paretoedge
measure` (the same as `python -m paretoedge.measure`) is available. The search, the fronts,
calibrate and export need pip install 'paretoedge[search]'.
"""


def missing_search_modules() -> list[str]:
    """The :data:`SEARCH_MODULES` that cannot be found (nothing is imported)."""
    missing = []
    for name in SEARCH_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def main(argv: list[str] | None = None) -> int:
    """Run the full CLI when the search stack is installed, else the kit (module doc)."""
    args = sys.argv[1:] if argv is None else argv
    missing = missing_search_modules()
    if not missing:
        from paretoedge.cli import main as full

        return full(args)
    if args[:1] == ["measure"]:
        from paretoedge.measure.__main__ import main as kit

        return kit(args[1:], prog="paretoedge measure")
    if not args or args[0] in ("-h", "--help"):
        print(_KIT_HELP, end="")
        return 0 if args else 2
    error = MissingExtraError(missing[0], "search")
    print(f"error: paretoedge {args[0]} needs the search stack: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
