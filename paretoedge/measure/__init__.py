"""The measuring kit: time exported models on a board and write what ``calibrate`` reads.

This package imports only the standard library, numpy and (when a file is loaded) the one
runtime asked for: never TVM, Optuna, torch (except ExecuTorch's own adapter) or the rest
of paretoedge's search stack. On a board, ``python -m paretoedge.measure`` runs it without
typer or rich; ``paretoedge measure`` is the same command in the full install.
"""

from __future__ import annotations

from ._kit import CSV_COLUMNS, FileTiming, MeasureOptions, measure_files, onnx_twin, write_csv
from ._runtimes import RUNTIMES, RuntimeAdapter, RuntimeMissingError, get_runtime
from ._timing import (
    DEFAULT_MAX_SPREAD,
    NoisyMeasurementError,
    Timing,
    check_spread,
    summarize,
    time_callable,
)

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_MAX_SPREAD",
    "RUNTIMES",
    "FileTiming",
    "MeasureOptions",
    "NoisyMeasurementError",
    "RuntimeAdapter",
    "RuntimeMissingError",
    "Timing",
    "check_spread",
    "get_runtime",
    "measure_files",
    "onnx_twin",
    "summarize",
    "time_callable",
    "write_csv",
]
