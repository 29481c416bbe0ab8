"""SQL storage of studies, candidates, per-device metrics, fronts and artifacts.

Open a database with :func:`open_storage` (SQLite file or PostgreSQL; the schema is
created and upgraded by the Alembic migrations shipped in ``migrations/``), then use the
keyword-only data-access functions below, which take the :class:`Storage` first and
return frozen records. Optuna's own tables live in the same database; the controller
gets its storage from :func:`optuna_storage`. Every driver error surfaces as
:class:`paretoedge.errors.StorageError`.

Each data-access function takes the :class:`Storage` first and everything else by
keyword, runs in one transaction (retried on transient conflicts, see :meth:`Storage.run`)
and returns frozen records, never ORM rows. The functions live in one module per concern:
``_studies``, ``_candidates`` (with their device metrics), ``_fronts``, ``_artifacts``,
``_measured`` and ``_claims``; ``_convert`` turns rows into records and ``_common`` holds
the argument checks and lookups they share.

Concurrency contract (several worker processes on one study):
- ``create_study`` is idempotent: the same name with the same config returns the stored
  study; a different config is a :class:`~paretoedge.errors.ConfigError` naming ``study``.
- ``upsert_candidate`` and ``upsert_device_metrics`` are single ``INSERT ... ON CONFLICT
  DO UPDATE`` statements on their unique keys, so two processes (or a retried trial)
  writing the same ``(study, trial_number)`` or ``(candidate, device)`` never create a
  duplicate and never fail on the unique constraint.
- ``replace_front`` swaps a device's whole ranking in one transaction, serialised per
  study, so readers see the old or the new front, never a mixture. ``extend_fronts`` adds
  one trial's ranks only on top of the front version its caller ranked against (read with
  ``read_front_changes``), so concurrent incremental writers never lose a candidate.
Nothing is deleted except the front rows that ``replace_front`` replaces.

Example::

    storage = open_storage("sqlite:///paretoedge.db")
    create_study(storage, name="qs", config=cfg, devices=["rpi4"],
                 objectives=[{"name": "accuracy", "device": None, "direction": "maximize"}],
                 seed=0)
    cand = upsert_candidate(storage, study="qs", trial_number=0, state="complete",
                            spec={"quant.bits": 8}, accuracy=0.81, size_bytes=1_000_000)
    upsert_device_metrics(storage, candidate_id=cand.id, device="rpi4", latency_ms=12.5,
                          peak_memory_bytes=2_000_000)
    replace_front(storage, study="qs", device="rpi4", ranks={cand.id: 0})
    page = get_front(storage, study="qs", device="rpi4", sort="accuracy", limit=20)
"""

from __future__ import annotations

from paretoedge.storage._artifacts import add_artifact, list_artifacts
from paretoedge.storage._candidates import (
    candidates_with_spec,
    get_candidate,
    list_candidates,
    set_test_accuracy,
    upsert_candidate,
    upsert_device_metrics,
    upsert_device_metrics_many,
)
from paretoedge.storage._engine import Storage, check_url, open_storage, parse_url
from paretoedge.storage._fronts import (
    extend_fronts,
    get_front,
    read_front_changes,
    replace_front,
    stale_fronts,
)
from paretoedge.storage._measured import (
    MeasuredLatencyRecord,
    get_measured_latencies,
    upsert_measured_latency,
)
from paretoedge.storage._measured_memory import (
    MeasuredMemoryRecord,
    get_measured_memory,
    upsert_measured_memory,
)
from paretoedge.storage._migrate import current_revision, head_revision, upgrade_schema
from paretoedge.storage._optuna import optuna_storage
from paretoedge.storage._records import (
    ARTIFACT_KINDS,
    CANDIDATE_STATES,
    FRONT_SORTS,
    MAX_PAGE_SIZE,
    STUDY_STATUSES,
    ArtifactKind,
    ArtifactRecord,
    CandidateRecord,
    CandidateState,
    CandidateValues,
    DeviceMetricsRecord,
    Direction,
    FrontChanges,
    FrontEntry,
    FrontPage,
    FrontSort,
    ObjectiveRecord,
    StudyRecord,
    StudyStatus,
    StudySummary,
)
from paretoedge.storage._studies import (
    add_study_device,
    create_study,
    get_study,
    list_studies,
    set_study_status,
)
from paretoedge.storage._trials import FinishedTrial, FrontExtension, finish_trial, start_trial

__all__ = [
    "ARTIFACT_KINDS",
    "CANDIDATE_STATES",
    "FRONT_SORTS",
    "MAX_PAGE_SIZE",
    "STUDY_STATUSES",
    "ArtifactKind",
    "ArtifactRecord",
    "CandidateRecord",
    "CandidateState",
    "CandidateValues",
    "DeviceMetricsRecord",
    "Direction",
    "FinishedTrial",
    "FrontChanges",
    "FrontExtension",
    "FrontEntry",
    "FrontPage",
    "FrontSort",
    "MeasuredLatencyRecord",
    "MeasuredMemoryRecord",
    "ObjectiveRecord",
    "Storage",
    "StudyRecord",
    "StudyStatus",
    "StudySummary",
    "add_artifact",
    "add_study_device",
    "candidates_with_spec",
    "check_url",
    "create_study",
    "current_revision",
    "extend_fronts",
    "finish_trial",
    "get_candidate",
    "get_front",
    "get_measured_latencies",
    "get_measured_memory",
    "get_study",
    "head_revision",
    "list_artifacts",
    "list_candidates",
    "list_studies",
    "open_storage",
    "optuna_storage",
    "parse_url",
    "read_front_changes",
    "replace_front",
    "set_study_status",
    "set_test_accuracy",
    "stale_fronts",
    "start_trial",
    "upgrade_schema",
    "upsert_candidate",
    "upsert_device_metrics",
    "upsert_device_metrics_many",
    "upsert_measured_latency",
    "upsert_measured_memory",
]
