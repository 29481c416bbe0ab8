"""Rows to frozen records: what leaves storage is never an ORM row (see ``_records``)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from paretoedge.storage._records import (
    ArtifactRecord,
    CandidateRecord,
    DeviceMetricsRecord,
    ObjectiveRecord,
    StudyRecord,
)

if TYPE_CHECKING:
    from sqlalchemy import RowMapping


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def study_record(row: RowMapping) -> StudyRecord:
    return StudyRecord(
        id=row["id"],
        name=row["name"],
        optuna_study_name=row["optuna_study_name"],
        config=MappingProxyType(dict(row["config"])),
        devices=tuple(row["devices"]),
        objectives=tuple(
            ObjectiveRecord(name=o["name"], device=o["device"], direction=o["direction"])
            for o in row["objectives"]
        ),
        status=row["status"],
        seed=row["seed"],
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
    )


def metrics_record(row: RowMapping, prefix: str = "") -> DeviceMetricsRecord:
    return DeviceMetricsRecord(
        candidate_id=row[prefix + "candidate_id"],
        device=row[prefix + "device"],
        latency_ms=row[prefix + "latency_ms"],
        peak_memory_bytes=row[prefix + "peak_memory_bytes"],
        energy_mj=row[prefix + "energy_mj"],
        flash_bytes=row[prefix + "flash_bytes"],
        sram_bytes=row[prefix + "sram_bytes"],
        feasible=bool(row[prefix + "feasible"]),
        violations=tuple(row[prefix + "violations"] or ()),
    )


def candidate_record(
    row: RowMapping, metrics: tuple[DeviceMetricsRecord, ...] = ()
) -> CandidateRecord:
    return CandidateRecord(
        id=row["id"],
        study_id=row["study_id"],
        trial_number=row["trial_number"],
        state=row["state"],
        is_baseline=bool(row["is_baseline"]),
        baseline_name=row["baseline_name"],
        spec=MappingProxyType(dict(row["spec"])),
        accuracy=row["accuracy"],
        test_accuracy=row["test_accuracy"],
        size_bytes=row["size_bytes"],
        parameters=row["parameters"],
        sparsity=row["sparsity"],
        fidelity=row["fidelity"],
        wall_s=row["wall_s"],
        created_at=utc(row["created_at"]),
        metrics=metrics,
    )


def artifact_record(row: RowMapping) -> ArtifactRecord:
    return ArtifactRecord(
        id=row["id"],
        candidate_id=row["candidate_id"],
        kind=row["kind"],
        path=row["path"],
        sha256=row["sha256"],
        bytes=row["bytes"],
        created_at=utc(row["created_at"]),
    )
