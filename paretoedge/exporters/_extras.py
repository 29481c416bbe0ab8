"""Imports of the optional runtimes, with the one-line "install paretoedge[X]" error.

The deployment formats beyond ONNX need packages that are not dependencies of paretoedge:
``executorch`` (the ExecuTorch exporter and its Python runtime) and ``tflite-micro`` (the
TensorFlow Lite Micro Python interpreter). Every use goes through :func:`require`, so a
missing package is a :class:`~paretoedge.errors.MissingExtraError` naming the extra to
install, never an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from paretoedge.errors import MissingExtraError

#: import name -> the extra of paretoedge that installs it
EXTRAS: dict[str, str] = {
    "executorch": "executorch",
    "tflite_micro": "tflm",
}


def available(package: str) -> bool:
    """Whether ``package`` (a key of :data:`EXTRAS`) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def require(package: str) -> ModuleType:
    """Import ``package`` (a key of :data:`EXTRAS`) or raise the "install" error.

    Raises:
        MissingExtraError: The package is not installed (or fails to import).
    """
    extra = EXTRAS[package]
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingExtraError(package, extra) from exc
