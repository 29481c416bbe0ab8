"""Request and response bodies of the HTTP API.

Kept apart from the storage records on purpose: the records are what the database holds,
these are the public contract of the API (what a client may rely on), built from records
with ``from_record`` and never handed to the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from paretoedge.storage import (
        CandidateRecord,
        DeviceMetricsRecord,
        FrontEntry,
        FrontPage,
        StudySummary,
    )


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ObjectiveOut(_Out):
    name: str
    device: str | None
    direction: Literal["minimize", "maximize"]


class StudyOut(_Out):
    """A study with its trial counts."""

    name: str
    status: Literal["running", "finished", "stopped", "failed"]
    devices: list[str]
    objectives: list[ObjectiveOut]
    seed: int
    trials_complete: int
    trials_failed: int
    trials_running: int
    trials_pruned: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_summary(cls, s: StudySummary) -> StudyOut:
        r = s.study
        return cls(
            name=r.name,
            status=r.status,
            devices=list(r.devices),
            objectives=[ObjectiveOut(**o.to_dict()) for o in r.objectives],
            seed=r.seed,
            trials_complete=s.trials_complete,
            trials_failed=s.trials_failed,
            trials_running=s.trials_running,
            trials_pruned=s.trials_pruned,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class StudyDetailOut(StudyOut):
    """A study with its full validated configuration."""

    config: dict[str, Any]


class StudyListOut(_Out):
    studies: list[StudyOut]


class DeviceMetricsOut(_Out):
    """One device's predictions; ``latency_worst_ms`` (early exit only) is the latency
    when no exit is taken, ``latency_ms`` then the expected latency."""

    device: str
    latency_ms: float
    latency_worst_ms: float | None = None
    peak_memory_bytes: int
    energy_mj: float | None
    flash_bytes: int | None
    sram_bytes: int | None
    feasible: bool
    violations: list[str]

    @classmethod
    def from_record(cls, m: DeviceMetricsRecord) -> DeviceMetricsOut:
        return cls(**m.to_dict())


class CandidateOut(_Out):
    """One trial: its compression config, measurements and per-device metrics."""

    trial: int
    state: Literal["running", "complete", "pruned", "failed"]
    is_baseline: bool
    baseline_name: str | None
    summary: str
    spec: dict[str, Any]
    accuracy: float | None
    test_accuracy: float | None
    size_bytes: int | None
    parameters: int | None
    sparsity: float | None
    fidelity: int | None
    wall_s: float | None
    metrics: dict[str, DeviceMetricsOut]

    @classmethod
    def from_record(cls, c: CandidateRecord) -> CandidateOut:
        from paretoedge._plot import spec_summary

        return cls(
            trial=c.trial_number,
            state=c.state,
            is_baseline=c.is_baseline,
            baseline_name=c.baseline_name,
            summary=c.baseline_name or spec_summary(c.flat),
            spec=c.flat,
            accuracy=c.accuracy,
            test_accuracy=c.test_accuracy,
            size_bytes=c.size_bytes,
            parameters=c.parameters,
            sparsity=c.sparsity,
            fidelity=c.fidelity,
            wall_s=c.wall_s,
            metrics={m.device: DeviceMetricsOut.from_record(m) for m in c.metrics},
        )


class TrialPageOut(_Out):
    study: str
    limit: int
    offset: int
    trials: list[CandidateOut]


class FrontEntryOut(_Out):
    rank: int
    trial: int
    is_baseline: bool
    baseline_name: str | None
    summary: str
    spec: dict[str, Any]
    accuracy: float | None
    test_accuracy: float | None
    size_bytes: int | None
    latency_ms: float
    latency_worst_ms: float | None = None
    measured_latency_ms: float | None = None
    peak_memory_bytes: int
    energy_mj: float | None
    feasible: bool

    @classmethod
    def from_entry(cls, e: FrontEntry, measured_ms: float | None = None) -> FrontEntryOut:
        from paretoedge._plot import spec_summary

        c, m = e.candidate, e.metrics
        return cls(
            rank=e.rank,
            trial=c.trial_number,
            is_baseline=c.is_baseline,
            baseline_name=c.baseline_name,
            summary=c.baseline_name or spec_summary(c.flat),
            spec=c.flat,
            accuracy=c.accuracy,
            test_accuracy=c.test_accuracy,
            size_bytes=c.size_bytes,
            latency_ms=m.latency_ms,
            latency_worst_ms=m.latency_worst_ms,
            measured_latency_ms=measured_ms,
            peak_memory_bytes=m.peak_memory_bytes,
            energy_mj=m.energy_mj,
            feasible=m.feasible,
        )


class FrontOut(_Out):
    """One page of a device's front; ``total`` counts every match of the filters."""

    study: str
    device: str
    total: int
    limit: int
    offset: int
    entries: list[FrontEntryOut]

    @classmethod
    def from_page(cls, p: FrontPage, measured_ms: dict[int, float] | None = None) -> FrontOut:
        """``measured_ms``: latency measured by ``paretoedge verify``, by candidate id."""
        got = measured_ms or {}
        return cls(
            study=p.study,
            device=p.device,
            total=p.total,
            limit=p.limit,
            offset=p.offset,
            entries=[FrontEntryOut.from_entry(e, got.get(e.candidate.id)) for e in p.entries],
        )


class LaunchIn(BaseModel):
    """Start a study: a full study config (as the YAML file would hold) or a bundled name."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = Field(
        default=None, description="The study configuration document (YAML as JSON)."
    )
    bundled: str | None = Field(
        default=None, max_length=100, description="A bundled study config name (quickstart)."
    )
    overrides: list[str] = Field(
        default_factory=list, max_length=50, description="KEY=VALUE overrides (like --set)."
    )
    name: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "Study name (default: the config's name): 1-100 characters of A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit (checked like paretoedge search --study)."
        ),
    )


class JobOut(_Out):
    """A study run launched by this server."""

    study: str
    pid: int | None
    running: bool
    returncode: int | None
    log: str


class ErrorOut(_Out):
    detail: str
