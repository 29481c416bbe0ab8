"""Deployment formats beyond ONNX, and the check that each file does what PyTorch does.

* :func:`export_executorch` / :func:`executorch_runner`: XNNPACK-delegated ExecuTorch
  programs (fp32 and int8) for ARM CPUs and phones (extra ``paretoedge[executorch]``);
* :func:`export_tflite` / :func:`tflm_memory` / :func:`tflm_runner`: int8 LiteRT
  flatbuffers for TensorFlow Lite Micro and their measured flash and arena (extra
  ``paretoedge[tflm]`` for the interpreter; the converter needs its own environment);
* :func:`check_runtime`: runs an exported file in its runtime on the test split and
  compares it with the PyTorch candidate (:class:`RuntimeCheck`);
* :func:`require` / :func:`available`: the optional runtimes, with the one-line
  "install paretoedge[X]" error when one is missing.

Importing this package imports neither torch nor any runtime; each function does, lazily.
"""

from __future__ import annotations

from paretoedge.exporters._agreement import (
    INT8_ACCURACY_TOLERANCE,
    MIN_AGREEMENT,
    RuntimeCheck,
    check_runtime,
    example_feeds,
    onnx_runner,
    torch_logits,
)
from paretoedge.exporters._executorch import executorch_runner, export_executorch
from paretoedge.exporters._extras import EXTRAS, available, require
from paretoedge.exporters._tflm import (
    ConverterUnavailableError,
    TflmMemory,
    export_tflite,
    tflm_memory,
    tflm_runner,
)

__all__ = [
    "EXTRAS",
    "ConverterUnavailableError",
    "TflmMemory",
    "export_tflite",
    "tflm_memory",
    "tflm_runner",
    "INT8_ACCURACY_TOLERANCE",
    "MIN_AGREEMENT",
    "RuntimeCheck",
    "available",
    "check_runtime",
    "example_feeds",
    "executorch_runner",
    "export_executorch",
    "onnx_runner",
    "require",
    "torch_logits",
]
