"""paretoedge: hardware-aware search for compressed transformers on edge devices.

Importing the package is cheap: torch, TVM, Ray and SQLAlchemy are imported only by
the modules that need them, so the CLI starts fast and ``paretoedge --help`` works
without the heavy stack being loaded.
"""

from __future__ import annotations

from paretoedge.errors import ConfigError, ParetoEdgeError

__version__ = "0.1.0"

__all__ = ["ConfigError", "ParetoEdgeError", "__version__"]
