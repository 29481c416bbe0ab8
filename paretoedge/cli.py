"""The ``paretoedge`` command line.

Each command group lives in the module of the part it drives and exposes
``register(app)``; this module only assembles them and turns
:class:`~paretoedge.errors.ParetoEdgeError` into one line on stderr and exit code 2.
Command modules import torch, TVM, Ray or SQLAlchemy inside the command bodies, so
``paretoedge --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from paretoedge.errors import ParetoEdgeError, shorten

#: Longest error line the CLI prints.
MAX_ERROR_LINE = 500

_COMMAND_MODULES = (
    "paretoedge.commands.models",
    "paretoedge.commands.compress",
    "paretoedge.hardware_profiles._cli",
    "paretoedge.search._cli",
    "paretoedge.commands.query",
    "paretoedge.commands.kit",
)


def build_app() -> typer.Typer:
    """A fresh Typer application with every command group registered."""
    app = typer.Typer(
        name="paretoedge",
        help="Search compressed transformers and their Pareto fronts per edge device.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _root(
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
    ) -> None:
        logging.basicConfig(
            level=logging.INFO if verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    app = build_app()
    try:
        result = app(args=argv, standalone_mode=False)
    except ParetoEdgeError as exc:
        print(f"error: {shorten(str(exc), MAX_ERROR_LINE)}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:
        # A usage error (bad flag, bad argument): one line too, with where to find help.
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        print(f"error: {shorten(message, MAX_ERROR_LINE)}{hint}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
