"""Measured latencies stored beside the predictions (``pe_measured_latency``).

Same contract as :mod:`paretoedge.storage`: keyword-only functions, one transaction
each, frozen records out. ``upsert_measured_latency`` is one ``INSERT ... ON CONFLICT DO
UPDATE`` on ``(candidate_id, device)``, so re-verifying a front replaces the older
measurement and never duplicates it. Predictions in ``pe_device_metrics`` are never
touched: a measurement sits beside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from paretoedge.errors import ConfigError
from paretoedge.storage._models import MeasuredLatencyRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy import Table

    from paretoedge.storage._engine import Storage

_MEASURED = cast("Table", MeasuredLatencyRow.__table__)


@dataclass(frozen=True)
class MeasuredLatencyRecord:
    """One candidate timed on one device's runtime.

    Attributes:
        artifact: Which file was timed (``onnx``, ``onnx-int8``, ``tvm``).
        spread: ``(p90 - p10) / median`` of the timed repeats.
        predicted_ms: The hardware model's latency when the measurement was taken.
    """

    candidate_id: int
    device: str
    runtime: str
    artifact: str
    threads: int
    repeats: int
    median_ms: float
    min_ms: float
    spread: float
    predicted_ms: float
    measured_at: datetime

    @property
    def error_pct(self) -> float:
        """Signed error of the prediction, in percent of the measurement."""
        return (self.predicted_ms - self.median_ms) / self.median_ms * 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "runtime": self.runtime,
            "artifact": self.artifact,
            "threads": self.threads,
            "repeats": self.repeats,
            "median_ms": self.median_ms,
            "min_ms": self.min_ms,
            "spread": self.spread,
            "predicted_ms": self.predicted_ms,
            "error_pct": self.error_pct,
            "measured_at": self.measured_at.isoformat(),
        }


def _positive(field: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(field, value, "a positive finite number")
    return float(value)


def _record(row: Mapping[str, Any] | Any) -> MeasuredLatencyRecord:
    at = row["measured_at"]
    return MeasuredLatencyRecord(
        candidate_id=row["candidate_id"],
        device=row["device"],
        runtime=row["runtime"],
        artifact=row["artifact"],
        threads=row["threads"],
        repeats=row["repeats"],
        median_ms=row["median_ms"],
        min_ms=row["min_ms"],
        spread=row["spread"],
        predicted_ms=row["predicted_ms"],
        measured_at=at if at.tzinfo is not None else at.replace(tzinfo=UTC),
    )


def upsert_measured_latency(
    storage: Storage,
    *,
    candidate_id: int,
    device: str,
    runtime: str,
    artifact: str,
    threads: int,
    repeats: int,
    median_ms: float,
    min_ms: float,
    spread: float,
    predicted_ms: float,
) -> MeasuredLatencyRecord:
    """Insert or replace the measured latency of one candidate on one device.

    Raises:
        ConfigError: A non-positive latency, thread or repeat count, or a negative spread.
        NotFoundError: The candidate does not exist.
    """

    for field, value in (("threads", threads), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(field, value, "an integer >= 1")
    if not (isinstance(spread, int | float) and math.isfinite(spread) and spread >= 0):
        raise ConfigError("spread", spread, "a finite number >= 0")
    for field, text, limit in (("device", device, 64), ("runtime", runtime, 32)):
        if not isinstance(text, str) or not 0 < len(text) <= limit:
            raise ConfigError(field, text, f"a non-empty string of at most {limit} characters")
    values = {
        "candidate_id": candidate_id,
        "device": device,
        "runtime": runtime,
        "artifact": artifact,
        "threads": threads,
        "repeats": repeats,
        "median_ms": _positive("median_ms", median_ms),
        "min_ms": _positive("min_ms", min_ms),
        "spread": float(spread),
        "predicted_ms": _positive("predicted_ms", predicted_ms),
        "measured_at": utcnow(),
    }

    from paretoedge.storage._common import upsert_candidate_device_row

    return upsert_candidate_device_row(storage, _MEASURED, values, _record)


def get_measured_latencies(
    storage: Storage, *, candidate_ids: list[int], device: str
) -> dict[int, MeasuredLatencyRecord]:
    """The stored measurements of ``candidate_ids`` on ``device``, by candidate id."""
    from paretoedge.storage._common import candidate_device_rows

    return candidate_device_rows(
        storage, _MEASURED, candidate_ids=candidate_ids, device=device, record=_record
    )
