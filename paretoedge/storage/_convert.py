"""Between rows and values: frozen records out (never ORM rows, see ``_records``), and a
candidate's :class:`~paretoedge.compression.CompressionSpec` in and out of its column.

The ``pe_candidates.spec`` column holds the spec's versioned document
(``{"_type": "CompressionSpec", "_version": ..., "_data": ...}``, see
:meth:`CompressionSpec.to_dict`) since revision 0009; an older document is upgraded when
read. Before 0009 it held the flat dotted keys, which :func:`spec_from_column` still reads
(the migrations before 0009 read rows written in that form).
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, StorageError
from paretoedge.storage._records import (
    ArtifactRecord,
    CandidateRecord,
    DeviceMetricsRecord,
    ObjectiveRecord,
    StudyRecord,
)

if TYPE_CHECKING:
    from sqlalchemy import RowMapping

    from paretoedge.compression import CompressionSpec


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
        latency_worst_ms=row[prefix + "latency_worst_ms"],
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
        spec=spec_from_column(row["spec"], where=f"trial {row['trial_number']}"),
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


def typed_spec(spec: Any) -> CompressionSpec:
    """``spec`` as a :class:`CompressionSpec` (flat dotted keys are read like ``--set``).

    Raises:
        ConfigError: not a spec or a mapping (field ``spec``), or flat keys the compression
            configs refuse (naming the key, e.g. ``quant.bits``).
    """
    from collections.abc import Mapping

    from paretoedge.compression import CompressionSpec

    if isinstance(spec, Mapping):
        spec = CompressionSpec.from_flat(spec)
    if not isinstance(spec, CompressionSpec):
        raise ConfigError("spec", spec, "a CompressionSpec or a mapping of dotted keys")
    return spec


def spec_from_column(value: Any, *, where: str = "candidate") -> CompressionSpec:
    """The spec of a stored ``spec`` column (a versioned document, or pre-0009 flat keys).

    Raises:
        StorageError: the stored value does not load (naming ``where`` and why).
    """
    from collections.abc import Mapping

    from paretoedge.compression import CompressionSpec

    try:
        if isinstance(value, Mapping) and "_type" in value:
            return CompressionSpec.from_dict(value)
        if isinstance(value, Mapping):
            return CompressionSpec.from_flat(value)
        raise ConfigError("spec", value, "a spec document")
    except ConfigError as exc:
        raise StorageError(f"the stored spec of {where} does not load: {exc}") from exc
