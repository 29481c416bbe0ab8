"""The built-in objectives: accuracy, size, and the per-device hardware quantities."""

from __future__ import annotations

from paretoedge.errors import ConfigError
from paretoedge.objectives._base import OBJECTIVES, Evaluation, Objective


@OBJECTIVES.register("accuracy")
class Accuracy(Objective):
    """Validation metric after recovery; measured once per candidate, device-independent."""

    name = "accuracy"
    per_device = False
    direction = "maximize"
    unit = ""

    def value(self, evaluation: Evaluation, device: str | None = None) -> float:
        return float(evaluation.accuracy)


@OBJECTIVES.register("size_bytes")
class SizeBytes(Objective):
    """Stored weight bytes at the candidate's bit-widths and sparsity."""

    name = "size_bytes"
    per_device = False
    direction = "minimize"
    unit = "B"

    def value(self, evaluation: Evaluation, device: str | None = None) -> float:
        return float(evaluation.size_bytes)


@OBJECTIVES.register("latency_ms")
class LatencyMs(Objective):
    """Predicted single-inference latency on the device."""

    name = "latency_ms"
    per_device = True
    direction = "minimize"
    unit = "ms"

    def value(self, evaluation: Evaluation, device: str | None = None) -> float:
        return float(self._device(evaluation, device).latency_ms)


@OBJECTIVES.register("energy_mj")
class EnergyMj(Objective):
    """Predicted energy of one inference on the device."""

    name = "energy_mj"
    per_device = True
    direction = "minimize"
    unit = "mJ"

    def value(self, evaluation: Evaluation, device: str | None = None) -> float:
        v = self._device(evaluation, device).energy_mj
        if v is None:
            raise ConfigError(f"energy_mj[{device}]", device, "a device with a power model")
        return float(v)


@OBJECTIVES.register("peak_memory_bytes")
class PeakMemoryBytes(Objective):
    """Predicted peak memory (weights resident plus live activations) on the device."""

    name = "peak_memory_bytes"
    per_device = True
    direction = "minimize"
    unit = "B"

    def value(self, evaluation: Evaluation, device: str | None = None) -> float:
        return float(self._device(evaluation, device).peak_memory_bytes)


class _MCUBytes(Objective):
    per_device = True
    direction = "minimize"
    unit = "B"
    attr: str

    def value(self, evaluation: Evaluation, device: str | None = None) -> float:
        v = getattr(self._device(evaluation, device), self.attr)
        if v is None:
            raise ConfigError(
                f"{self.name}[{device}]", device, "a device whose profile defines flash and SRAM"
            )
        return float(v)


@OBJECTIVES.register("flash_bytes")
class FlashBytes(_MCUBytes):
    """Flash (read-only memory) a microcontroller needs for weights and code."""

    name = "flash_bytes"
    attr = "flash_bytes"


@OBJECTIVES.register("sram_bytes")
class SramBytes(_MCUBytes):
    """SRAM a microcontroller needs for activations and scratch."""

    name = "sram_bytes"
    attr = "sram_bytes"
