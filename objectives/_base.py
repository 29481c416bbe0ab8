"""The objective plug-in interface and the values objectives read.

An objective turns one candidate's measurements into one number. Accuracy and size are
properties of the candidate alone and are measured once; per-device objectives read the
hardware model's prediction for one device, so a single compressed candidate yields values
for every target device (and a new device can be scored later from stored artifacts).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from paretoedge._registry import Registry
from paretoedge._types import Direction
from paretoedge.errors import ConfigError


@dataclass(frozen=True)
class DeviceMetrics:
    """What the hardware model predicted for one candidate on one device.

    The field names match :class:`paretoedge.hardware_profiles.Prediction` and the
    ``pe_device_metrics`` table, so either can be converted with :meth:`from_object`.
    """

    latency_ms: float
    peak_memory_bytes: int
    energy_mj: float | None
    flash_bytes: int | None = None
    sram_bytes: int | None = None
    feasible: bool = True
    violations: tuple[str, ...] = ()
    #: Early-exit candidates: latency when every exit declines (``latency_ms`` is then the
    #: expected latency over the validation set's exit distribution); None otherwise.
    latency_worst_ms: float | None = None

    @classmethod
    def from_object(cls, obj: object) -> DeviceMetrics:
        """Build from any object with the same attribute names (a Prediction, a record)."""
        feasible = getattr(obj, "feasible", True)
        return cls(
            latency_ms=float(obj.latency_ms),  # type: ignore[attr-defined]
            peak_memory_bytes=int(obj.peak_memory_bytes),  # type: ignore[attr-defined]
            energy_mj=_opt_float(getattr(obj, "energy_mj", None)),
            flash_bytes=_opt_int(getattr(obj, "flash_bytes", None)),
            sram_bytes=_opt_int(getattr(obj, "sram_bytes", None)),
            feasible=bool(feasible),
            violations=tuple(getattr(obj, "violations", ()) or ()),
            latency_worst_ms=_opt_float(getattr(obj, "latency_worst_ms", None)),
        )


def _opt_float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def _opt_int(v: object) -> int | None:
    return None if v is None else int(v)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Evaluation:
    """All measurements of one candidate.

    Attributes:
        accuracy: Validation metric after the candidate's recovery budget (what the search
            optimizes; the test metric is kept apart and computed for front members only).
        size_bytes: Stored size of the weights at their bit-widths and sparsity.
        devices: Predictions per device name.
    """

    accuracy: float
    size_bytes: int
    parameters: int = 0
    sparsity: float = 0.0
    devices: Mapping[str, DeviceMetrics] = field(default_factory=dict)


class Objective(abc.ABC):
    """One scalar a study can optimize or constrain.

    Subclasses set ``name``, ``per_device`` (whether the value depends on the target
    device), ``direction`` (the natural direction, used when a study does not state one)
    and ``unit``, and implement :meth:`value`. Objectives are stateless and thread-safe.
    """

    name: ClassVar[str]
    per_device: ClassVar[bool]
    direction: ClassVar[Direction]
    unit: ClassVar[str]

    @abc.abstractmethod
    def value(self, evaluation: Evaluation, device: str | None = None) -> float:
        """The objective's value for ``evaluation`` (on ``device`` when ``per_device``).

        Raises:
            ConfigError: ``device`` is missing for a per-device objective, was not
                evaluated, or the device does not define this quantity.
        """

    def _device(self, evaluation: Evaluation, device: str | None) -> DeviceMetrics:
        if device is None:
            raise ConfigError(f"{self.name}[device]", None, "a device name")
        try:
            return evaluation.devices[device]
        except KeyError:
            raise ConfigError(
                f"{self.name}[{device}]", device, sorted(evaluation.devices) or "no devices"
            ) from None


OBJECTIVES: Registry[type[Objective]] = Registry("objective")


def get_objective(name: str) -> Objective:
    """An instance of the objective registered under ``name``."""
    return OBJECTIVES.get(name)()
