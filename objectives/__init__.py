"""Objectives a study optimizes: accuracy, latency, energy, size, memory.

One registered :class:`Objective` class per quantity (``OBJECTIVES``). Per-device objectives
are written ``name[device]`` in study files (``latency_ms[rpi4]``).
"""

from __future__ import annotations

from paretoedge.objectives import _builtin as _builtin
from paretoedge.objectives._base import (
    OBJECTIVES,
    DeviceMetrics,
    Direction,
    Evaluation,
    Objective,
    get_objective,
)
from paretoedge.objectives._builtin import (
    Accuracy,
    EnergyMj,
    FlashBytes,
    LatencyMs,
    PeakMemoryBytes,
    SizeBytes,
    SramBytes,
)

__all__ = [
    "OBJECTIVES",
    "Accuracy",
    "DeviceMetrics",
    "Direction",
    "EnergyMj",
    "Evaluation",
    "FlashBytes",
    "LatencyMs",
    "Objective",
    "PeakMemoryBytes",
    "SizeBytes",
    "SramBytes",
    "get_objective",
]
