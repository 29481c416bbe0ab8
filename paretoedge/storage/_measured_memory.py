"""Measured MCU memory stored beside the predictions (``pe_measured_memory``).

Same contract as :mod:`paretoedge.storage._measured`: keyword-only functions, one
transaction each, frozen records out; ``upsert_measured_memory`` replaces an older
measurement of the same ``(candidate_id, device)``. The prediction stored here is the
hardware model's for the pointer width of the machine that measured (TFLM's structs are
larger on a 64-bit host than on a Cortex-M), so the two columns compare like with like;
the device's own prediction stays in ``pe_device_metrics``, untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from paretoedge.errors import ConfigError
from paretoedge.storage._models import MeasuredMemoryRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy import Table

    from paretoedge.storage._engine import Storage

_MEMORY = cast("Table", MeasuredMemoryRow.__table__)

_SIZES = ("flash_bytes", "sram_bytes", "predicted_flash_bytes", "predicted_sram_bytes")


@dataclass(frozen=True)
class MeasuredMemoryRecord:
    """One candidate's flash and SRAM measured in an MCU runtime (TFLM).

    Attributes:
        flash_bytes: Size of the flatbuffer.
        sram_bytes: Smallest tensor arena with which the runtime allocated and ran it.
        predicted_flash_bytes, predicted_sram_bytes: The hardware model's prediction for
            the same structure at ``pointer_bytes``.
        pointer_bytes: Pointer width of the machine that measured (8 on a 64-bit host).
    """

    candidate_id: int
    device: str
    runtime: str
    flash_bytes: int
    sram_bytes: int
    predicted_flash_bytes: int
    predicted_sram_bytes: int
    pointer_bytes: int
    measured_at: datetime

    @property
    def flash_error_pct(self) -> float:
        """Signed error of the flash prediction, in percent of the measurement."""
        return (self.predicted_flash_bytes - self.flash_bytes) / self.flash_bytes * 100

    @property
    def sram_error_pct(self) -> float:
        """Signed error of the SRAM prediction, in percent of the measurement."""
        return (self.predicted_sram_bytes - self.sram_bytes) / self.sram_bytes * 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "runtime": self.runtime,
            **{k: getattr(self, k) for k in _SIZES},
            "pointer_bytes": self.pointer_bytes,
            "flash_error_pct": self.flash_error_pct,
            "sram_error_pct": self.sram_error_pct,
            "measured_at": self.measured_at.isoformat(),
        }


def _record(row: Mapping[str, Any] | Any) -> MeasuredMemoryRecord:
    at = row["measured_at"]
    return MeasuredMemoryRecord(
        candidate_id=row["candidate_id"],
        device=row["device"],
        runtime=row["runtime"],
        flash_bytes=row["flash_bytes"],
        sram_bytes=row["sram_bytes"],
        predicted_flash_bytes=row["predicted_flash_bytes"],
        predicted_sram_bytes=row["predicted_sram_bytes"],
        pointer_bytes=row["pointer_bytes"],
        measured_at=at if at.tzinfo is not None else at.replace(tzinfo=UTC),
    )


def upsert_measured_memory(
    storage: Storage,
    *,
    candidate_id: int,
    device: str,
    runtime: str,
    flash_bytes: int,
    sram_bytes: int,
    predicted_flash_bytes: int,
    predicted_sram_bytes: int,
    pointer_bytes: int,
) -> MeasuredMemoryRecord:
    """Insert or replace the measured memory of one candidate on one device.

    Raises:
        ConfigError: A size that is not a positive integer, a pointer width other than 4
            or 8, or an empty/over-long device or runtime name.
        NotFoundError: The candidate does not exist.
    """

    sizes = {
        "flash_bytes": flash_bytes,
        "sram_bytes": sram_bytes,
        "predicted_flash_bytes": predicted_flash_bytes,
        "predicted_sram_bytes": predicted_sram_bytes,
    }
    for field, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(field, value, "an integer number of bytes >= 1")
    if pointer_bytes not in (4, 8) or isinstance(pointer_bytes, bool):
        raise ConfigError("pointer_bytes", pointer_bytes, (4, 8))
    for field, text, limit in (("device", device, 64), ("runtime", runtime, 32)):
        if not isinstance(text, str) or not 0 < len(text) <= limit:
            raise ConfigError(field, text, f"a non-empty string of at most {limit} characters")
    values: dict[str, Any] = {
        "candidate_id": candidate_id,
        "device": device,
        "runtime": runtime,
        **sizes,
        "pointer_bytes": pointer_bytes,
        "measured_at": utcnow(),
    }

    from paretoedge.storage._common import upsert_candidate_device_row

    return upsert_candidate_device_row(storage, _MEMORY, values, _record)


def get_measured_memory(
    storage: Storage, *, candidate_ids: list[int], device: str
) -> dict[int, MeasuredMemoryRecord]:
    """The stored memory measurements of ``candidate_ids`` on ``device``, by candidate id."""
    from paretoedge.storage._common import candidate_device_rows

    return candidate_device_rows(
        storage, _MEMORY, candidate_ids=candidate_ids, device=device, record=_record
    )
