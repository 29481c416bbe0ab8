"""paretoedge: hardware-aware search for compressed transformers on edge devices.

The Python API mirrors Optuna's: :func:`create_study` / :func:`load_study` return a
:class:`Study` (``optimize``, ``add_device``, ``front``, ``trials``, ``export``);
:func:`compress` and :func:`predict` work on one model.

Importing the package is cheap: torch, TVM, Ray and SQLAlchemy are imported only by
the functions that need them (the names below load their module on first use), so the
CLI starts fast and ``paretoedge --help`` works without the heavy stack being loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, ParetoEdgeError

if TYPE_CHECKING:
    from paretoedge._study import Study, compress, create_study, load_study, predict

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ParetoEdgeError",
    "Study",
    "__version__",
    "compress",
    "create_study",
    "load_study",
    "predict",
]

_LAZY = {name: "paretoedge._study" for name in __all__ if name[0].islower() and name[0] != "_"}
_LAZY["Study"] = "paretoedge._study"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paretoedge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
