"""SQLAlchemy 2 declarative models of the ``pe_*`` tables.

These are private: the data-access functions in :mod:`paretoedge.storage` turn rows
into the frozen records of :mod:`paretoedge.storage._records`. The schema itself is
created and upgraded by the Alembic revisions in ``migrations/versions``; a test checks
that the head revision and these models agree (``alembic.autogenerate.compare_metadata``).

Optuna's RDBStorage keeps its own tables (``studies``, ``trials``, ...) and its own
``alembic_version`` table in the same database, which is why ours is
``pe_alembic_version`` and every one of our tables starts with ``pe_``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSON everywhere, JSONB on PostgreSQL (binary, indexable, no duplicate keys).
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

VERSION_TABLE = "pe_alembic_version"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType}


class StudyRow(Base):
    __tablename__ = "pe_studies"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'finished', 'stopped', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    optuna_study_name: Mapped[str] = mapped_column(String(512))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    devices: Mapped[list[Any]] = mapped_column(JSONType)
    objectives: Mapped[list[Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Bumped by every transaction that writes the study's fronts (``pe_front.seq``).
    front_version: Mapped[int] = mapped_column(Integer, server_default="0")
    #: ``front_version`` of the last whole-ranking replacement (a reader's cache reloads).
    front_reset: Mapped[int] = mapped_column(Integer, server_default="0")


class CandidateRow(Base):
    __tablename__ = "pe_candidates"
    __table_args__ = (
        UniqueConstraint("study_id", "trial_number"),
        CheckConstraint("state IN ('running', 'complete', 'pruned', 'failed')", name="state"),
        Index(None, "study_id", "state"),
        # the twin lookup's equality and order (earliest trial of a spec): one probe
        Index(None, "study_id", "spec_hash", "trial_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("pe_studies.id", ondelete="CASCADE"))
    trial_number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    baseline_name: Mapped[str | None] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: :meth:`CompressionSpec.digest` of ``spec`` (NULL for a stored spec that does not load).
    spec_hash: Mapped[str | None] = mapped_column(String(64))
    accuracy: Mapped[float | None] = mapped_column(Float)
    test_accuracy: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    parameters: Mapped[int | None] = mapped_column(BigInteger)
    sparsity: Mapped[float | None] = mapped_column(Float)
    fidelity: Mapped[int | None] = mapped_column(Integer)
    wall_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeviceMetricsRow(Base):
    __tablename__ = "pe_device_metrics"
    __table_args__ = (
        UniqueConstraint("candidate_id", "device"),
        Index(None, "device", "candidate_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("pe_candidates.id", ondelete="CASCADE"))
    device: Mapped[str] = mapped_column(String(64))
    latency_ms: Mapped[float] = mapped_column(Float)
    peak_memory_bytes: Mapped[int] = mapped_column(BigInteger)
    energy_mj: Mapped[float | None] = mapped_column(Float)
    flash_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sram_bytes: Mapped[int | None] = mapped_column(BigInteger)
    feasible: Mapped[bool] = mapped_column(Boolean)
    violations: Mapped[list[Any]] = mapped_column(JSONType)
    #: Early-exit candidates: the latency when no exit is taken (``latency_ms`` is the
    #: expected latency over the exit distribution); NULL for every other candidate.
    latency_worst_ms: Mapped[float | None] = mapped_column(Float)


class FrontRow(Base):
    """Precomputed front membership: the rank of each ranked candidate on one device.

    Written by :func:`replace_front`; read by :func:`get_front`, which filters, sorts and
    counts on this table alone through ``(study_id, device, rank, latency_ms)`` and joins
    the candidate and metrics rows only for the page it returns. ``latency_ms``,
    ``accuracy`` and ``size_bytes`` are copies of the candidate's values (on this device)
    that the data-access functions update together with their source rows.
    """

    __tablename__ = "pe_front"
    __table_args__ = (
        Index(None, "study_id", "device", "rank", "latency_ms"),
        Index(None, "candidate_id"),
        Index(None, "study_id", "device", "seq"),
    )

    study_id: Mapped[int] = mapped_column(
        ForeignKey("pe_studies.id", ondelete="CASCADE"), primary_key=True
    )
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("pe_candidates.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: The study's ``front_version`` of the transaction that ranked this candidate first.
    seq: Mapped[int] = mapped_column(Integer, server_default="0")


class ArtifactRow(Base):
    __tablename__ = "pe_artifacts"
    __table_args__ = (
        UniqueConstraint("candidate_id", "kind", "path"),
        CheckConstraint(
            "kind IN ('onnx', 'hf', 'tvm', 'card', 'executorch', 'tflite')", name="kind"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("pe_candidates.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrialClaimRow(Base):
    """A budget slot taken by a worker for one trial, and the trial's owning process.

    Written by :mod:`paretoedge.storage._claims`: a worker takes a claim (counting the study's
    trials in the same transaction) *before* it asks Optuna for a trial, then binds the claim
    to the trial's number. ``trial_number`` is ``NULL`` in between. The owner columns let
    ``resume`` tell a dead local owner from a live one at once
    (:class:`~paretoedge.storage._owner.Owner`).
    """

    __tablename__ = "pe_trial_claims"
    __table_args__ = (UniqueConstraint("study_id", "trial_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("pe_studies.id", ondelete="CASCADE"))
    trial_number: Mapped[int | None] = mapped_column(Integer)
    owner_host: Mapped[str] = mapped_column(String(255))
    owner_pid: Mapped[int] = mapped_column(Integer)
    owner_started: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MeasuredLatencyRow(Base):
    """A candidate's latency timed on a real runtime, beside what the model predicted.

    Written by ``paretoedge verify`` (:mod:`paretoedge.storage._measured`); one row per
    ``(candidate, device)``, replaced by a newer measurement.
    """

    __tablename__ = "pe_measured_latency"
    __table_args__ = (UniqueConstraint("candidate_id", "device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("pe_candidates.id", ondelete="CASCADE"))
    device: Mapped[str] = mapped_column(String(64))
    runtime: Mapped[str] = mapped_column(String(32))
    artifact: Mapped[str] = mapped_column(String(32))
    threads: Mapped[int] = mapped_column(Integer)
    repeats: Mapped[int] = mapped_column(Integer)
    median_ms: Mapped[float] = mapped_column(Float)
    min_ms: Mapped[float] = mapped_column(Float)
    spread: Mapped[float] = mapped_column(Float)
    predicted_ms: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MeasuredMemoryRow(Base):
    """A candidate's MCU flash and SRAM measured by TFLM, beside what the model predicted.

    Written by ``bench/tflm_memory.py store`` (:mod:`paretoedge.storage._measured_memory`);
    one row per ``(candidate, device)``, replaced by a newer measurement.
    """

    __tablename__ = "pe_measured_memory"
    __table_args__ = (UniqueConstraint("candidate_id", "device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("pe_candidates.id", ondelete="CASCADE"))
    device: Mapped[str] = mapped_column(String(64))
    runtime: Mapped[str] = mapped_column(String(32))
    flash_bytes: Mapped[int] = mapped_column(BigInteger)
    sram_bytes: Mapped[int] = mapped_column(BigInteger)
    predicted_flash_bytes: Mapped[int] = mapped_column(BigInteger)
    predicted_sram_bytes: Mapped[int] = mapped_column(BigInteger)
    pointer_bytes: Mapped[int] = mapped_column(Integer)
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
