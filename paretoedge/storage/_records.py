"""Immutable values that leave storage.

ORM rows never cross the package boundary: a row is bound to a session and changes
under the caller's feet, while these dataclasses are plain, frozen snapshots that can be
cached, compared, pickled to a worker process and serialised to JSON (``to_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from paretoedge._types import Direction

if TYPE_CHECKING:
    from paretoedge.compression import CompressionSpec

StudyStatus = Literal["running", "finished", "stopped", "failed"]
CandidateState = Literal["running", "complete", "pruned", "failed"]
ArtifactKind = Literal["onnx", "hf", "tvm", "card", "executorch", "tflite"]
FrontSort = Literal["latency", "accuracy", "size"]

STUDY_STATUSES: tuple[str, ...] = get_args(StudyStatus)
CANDIDATE_STATES: tuple[str, ...] = get_args(CandidateState)
ARTIFACT_KINDS: tuple[str, ...] = get_args(ArtifactKind)
FRONT_SORTS: tuple[str, ...] = get_args(FrontSort)
DIRECTIONS: tuple[str, ...] = get_args(Direction)

#: The largest page :func:`get_front` and :func:`list_candidates` return in one call.
MAX_PAGE_SIZE = 1000


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class ObjectiveRecord:
    """One objective of a study: ``latency_ms`` on ``rpi4`` minimised, ``accuracy`` maximised.

    ``device`` is ``None`` for device-independent objectives (accuracy, size).
    """

    name: str
    device: str | None
    direction: Direction

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "direction": self.direction}


@dataclass(frozen=True)
class StudyRecord:
    """A stored study. ``config`` is the full validated study configuration as JSON."""

    id: int
    name: str
    optuna_study_name: str
    config: Mapping[str, Any]
    devices: tuple[str, ...]
    objectives: tuple[ObjectiveRecord, ...]
    status: StudyStatus
    seed: int
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "optuna_study_name": self.optuna_study_name,
            "config": dict(self.config),
            "devices": list(self.devices),
            "objectives": [o.to_dict() for o in self.objectives],
            "status": self.status,
            "seed": self.seed,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class StudySummary:
    """A study with the number of its candidates in each state (for ``paretoedge studies``)."""

    study: StudyRecord
    trials_complete: int
    trials_failed: int
    trials_running: int
    trials_pruned: int

    @property
    def trials_total(self) -> int:
        return self.trials_complete + self.trials_failed + self.trials_running + self.trials_pruned

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.study.to_dict(),
            "trials_complete": self.trials_complete,
            "trials_failed": self.trials_failed,
            "trials_running": self.trials_running,
            "trials_pruned": self.trials_pruned,
            "trials_total": self.trials_total,
        }


@dataclass(frozen=True)
class DeviceMetricsRecord:
    """What the hardware model predicted for one candidate on one device."""

    candidate_id: int
    device: str
    latency_ms: float
    peak_memory_bytes: int
    energy_mj: float | None
    flash_bytes: int | None
    sram_bytes: int | None
    feasible: bool
    violations: tuple[str, ...]
    #: Early-exit candidates: the latency when every exit declines (the full prefix, every
    #: exit head on the way); ``latency_ms`` is then the expected latency over the
    #: validation set's exit distribution. None for candidates without exits.
    latency_worst_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "latency_ms": self.latency_ms,
            "latency_worst_ms": self.latency_worst_ms,
            "peak_memory_bytes": self.peak_memory_bytes,
            "energy_mj": self.energy_mj,
            "flash_bytes": self.flash_bytes,
            "sram_bytes": self.sram_bytes,
            "feasible": self.feasible,
            "violations": list(self.violations),
        }


@dataclass(frozen=True)
class CandidateValues:
    """The measured columns a candidate row is written with.

    One value object for every write path (:func:`upsert_candidate`,
    :func:`start_trial`, :func:`finish_trial`), so the columns are named and checked in one
    place. ``None`` keeps the stored value: writing ``running`` again cannot erase an
    accuracy.
    """

    accuracy: float | None = None
    test_accuracy: float | None = None
    size_bytes: int | None = None
    parameters: int | None = None
    sparsity: float | None = None
    fidelity: int | None = None
    wall_s: float | None = None


@dataclass(frozen=True)
class CandidateRecord:
    """One trial of a study: its compression spec and device-independent metrics.

    ``spec`` is the typed :class:`~paretoedge.compression.CompressionSpec` (stored as its
    versioned document); :attr:`flat` gives its dotted keys for the edges that speak them
    (tables, JSON output, Optuna parameters).

    ``metrics`` holds the device metrics that were loaded with it: every device for
    :func:`get_candidate`, the asked device only for :func:`get_front` and for
    :func:`list_candidates` called with ``device=``.
    """

    id: int
    study_id: int
    trial_number: int
    state: CandidateState
    is_baseline: bool
    baseline_name: str | None
    spec: CompressionSpec
    accuracy: float | None
    test_accuracy: float | None
    size_bytes: int | None
    parameters: int | None
    sparsity: float | None
    fidelity: int | None
    wall_s: float | None
    created_at: datetime
    metrics: tuple[DeviceMetricsRecord, ...] = field(default=(), compare=True)

    @property
    def flat(self) -> dict[str, Any]:
        """The spec as dotted keys, every field of every set transform (``to_flat``)."""
        return self.spec.to_flat()

    def metrics_for(self, device: str) -> DeviceMetricsRecord | None:
        """The metrics of this candidate on ``device``, or ``None`` when not loaded/stored."""
        for m in self.metrics:
            if m.device == device:
                return m
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trial_number": self.trial_number,
            "state": self.state,
            "is_baseline": self.is_baseline,
            "baseline_name": self.baseline_name,
            "spec": self.flat,
            "accuracy": self.accuracy,
            "test_accuracy": self.test_accuracy,
            "size_bytes": self.size_bytes,
            "parameters": self.parameters,
            "sparsity": self.sparsity,
            "fidelity": self.fidelity,
            "wall_s": self.wall_s,
            "created_at": _iso(self.created_at),
            "metrics": {m.device: m.to_dict() for m in self.metrics},
        }


@dataclass(frozen=True)
class FrontEntry:
    """A member of a device's ranked front (rank 0 = non-dominated)."""

    rank: int
    candidate: CandidateRecord
    metrics: DeviceMetricsRecord

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, **self.candidate.to_dict(), "device": self.metrics.to_dict()}


@dataclass(frozen=True)
class FrontChanges:
    """What a study's stored fronts gained since a version (:func:`read_front_changes`).

    Attributes:
        version: The study's front version now.
        reload: The rankings were replaced since (or no version was given): ``rows`` hold
            every ranked candidate, and a cache must start again from them.
        rows: Device -> the ranked candidates added since the version (all of them when
            ``reload``), each with its stored rank and its metrics on that device.
    """

    version: int
    reload: bool
    rows: Mapping[str, tuple[FrontEntry, ...]]


@dataclass(frozen=True)
class FrontPage:
    """One page of :func:`get_front`; ``total`` counts every match of the filters."""

    study: str
    device: str
    total: int
    limit: int
    offset: int
    entries: tuple[FrontEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "device": self.device,
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "entries": [e.to_dict() for e in self.entries],
        }


@dataclass(frozen=True)
class ArtifactRecord:
    """A file produced for a candidate (exported ONNX, HF directory, TVM library, card)."""

    id: int
    candidate_id: int
    kind: ArtifactKind
    path: str
    sha256: str
    bytes: int
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "candidate_id": self.candidate_id,
            "kind": self.kind,
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "created_at": _iso(self.created_at),
        }
