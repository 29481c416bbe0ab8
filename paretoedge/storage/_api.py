"""Keyword-only data-access functions: the only way the rest of paretoedge reads and writes.

Each function takes the :class:`~paretoedge.storage.Storage` first and everything else by
keyword, runs in one transaction (retried on transient conflicts, see
:meth:`Storage.run`) and returns frozen records, never ORM rows.

Concurrency contract (several worker processes on one study):
- ``create_study`` is idempotent: the same name with the same config returns the stored
  study; a different config is a :class:`~paretoedge.errors.ConfigError` naming ``study``.
- ``upsert_candidate`` and ``upsert_device_metrics`` are single ``INSERT ... ON CONFLICT
  DO UPDATE`` statements on their unique keys, so two processes (or a retried trial)
  writing the same ``(study, trial_number)`` or ``(candidate, device)`` never create a
  duplicate and never fail on the unique constraint.
- ``replace_front`` swaps a device's whole ranking in one transaction, serialised per
  study, so readers see the old or the new front, never a mixture.
Nothing is deleted except the front rows that ``replace_front`` replaces.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from paretoedge.errors import ConfigError, NotFoundError, StorageError
from paretoedge.storage._models import (
    ArtifactRow,
    CandidateRow,
    DeviceMetricsRow,
    FrontRow,
    StudyRow,
    utcnow,
)
from paretoedge.storage._records import (
    ARTIFACT_KINDS,
    CANDIDATE_STATES,
    DIRECTIONS,
    FRONT_SORTS,
    MAX_PAGE_SIZE,
    STUDY_STATUSES,
    ArtifactKind,
    ArtifactRecord,
    CandidateRecord,
    CandidateState,
    DeviceMetricsRecord,
    FrontEntry,
    FrontPage,
    FrontSort,
    ObjectiveRecord,
    StudyRecord,
    StudyStatus,
    StudySummary,
)

if TYPE_CHECKING:
    from sqlalchemy import RowMapping, Table
    from sqlalchemy.orm import Session

    from paretoedge.storage._engine import Storage

_STUDIES = cast("Table", StudyRow.__table__)
_CANDIDATES = cast("Table", CandidateRow.__table__)
_METRICS = cast("Table", DeviceMetricsRow.__table__)
_FRONT = cast("Table", FrontRow.__table__)
_ARTIFACTS = cast("Table", ArtifactRow.__table__)
_FINISHED = ("complete", "pruned", "failed")
_NAME_MAX = 200
_DEVICE_MAX = 64


# ---------------------------------------------------------------------------- validation


def _check_name(field: str, value: object, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ConfigError(field, value, f"a non-empty string of at most {max_len} characters")
    return value


def _check_choice(field: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(field, value, allowed)
    return cast(str, value)


def _check_int(field: str, value: object, *, minimum: int = 0, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(field, value, f"an integer >= {minimum}")
    return value


def _check_float(
    field: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    optional: bool = True,
) -> Any:
    if value is None and optional:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        number = float(cast(float, value))
        ok = math.isfinite(number)
        ok = ok and (minimum is None or number >= minimum)
        ok = ok and (maximum is None or number <= maximum)
    if not ok:
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ConfigError(field, value, f"a finite number in [{lo}, {hi}]")
    return float(cast(float, value))


def _check_json(field: str, value: object, kind: type) -> Any:
    if not isinstance(value, kind):
        raise ConfigError(field, value, f"a JSON {kind.__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(field, value, f"JSON-serialisable values only ({exc})") from exc


def _check_page(limit: object, offset: object, *, optional_limit: bool) -> None:
    if not (optional_limit and limit is None):
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ConfigError("limit", limit, f"an integer in [1, {MAX_PAGE_SIZE}]")
    _check_int("offset", offset)


def _objectives(value: Iterable[ObjectiveRecord | Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, obj in enumerate(value):
        if isinstance(obj, ObjectiveRecord):
            obj = obj.to_dict()
        if not isinstance(obj, Mapping) or set(obj) - {"name", "device", "direction"}:
            raise ConfigError(
                f"objectives[{i}]", obj, "a mapping with keys name, device, direction"
            )
        name = _check_name(f"objectives[{i}].name", obj.get("name"), _NAME_MAX)
        device = obj.get("device")
        if device is not None:
            _check_name(f"objectives[{i}].device", device, _DEVICE_MAX)
        direction = _check_choice(f"objectives[{i}].direction", obj.get("direction"), DIRECTIONS)
        out.append({"name": name, "device": device, "direction": direction})
    if not out:
        raise ConfigError("objectives", [], "at least one objective")
    return out


def _devices(value: Iterable[str]) -> list[str]:
    if isinstance(value, str):
        raise ConfigError("devices", value, "a list of device names")
    devices = [_check_name(f"devices[{i}]", d, _DEVICE_MAX) for i, d in enumerate(value)]
    if not devices:
        raise ConfigError("devices", devices, "at least one device")
    if len(set(devices)) != len(devices):
        raise ConfigError("devices", devices, "distinct device names")
    return devices


# ---------------------------------------------------------------------------- row -> record


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _study_record(row: RowMapping) -> StudyRecord:
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
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
    )


def _metrics_record(row: RowMapping, prefix: str = "") -> DeviceMetricsRecord:
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


def _candidate_record(
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
        created_at=_utc(row["created_at"]),
        metrics=metrics,
    )


def _artifact_record(row: RowMapping) -> ArtifactRecord:
    return ArtifactRecord(
        id=row["id"],
        candidate_id=row["candidate_id"],
        kind=row["kind"],
        path=row["path"],
        sha256=row["sha256"],
        bytes=row["bytes"],
        created_at=_utc(row["created_at"]),
    )


# ---------------------------------------------------------------------------- helpers


def _insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT (both SQLite and PostgreSQL support ON CONFLICT)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _study_row(session: Session, name: str, *, for_update: bool = False) -> RowMapping:
    from sqlalchemy import select

    query = select(_STUDIES).where(_STUDIES.c.name == name)
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).mappings().first()
    if row is None:
        known = session.execute(select(_STUDIES.c.name).order_by(_STUDIES.c.name).limit(20))
        names = ", ".join(known.scalars()) or "none"
        raise NotFoundError(f"study {name!r} not found (stored studies: {names})")
    return row


def _candidate_row(session: Session, study_id: int, trial_number: int, study: str) -> RowMapping:
    from sqlalchemy import select

    row = (
        session.execute(
            select(_CANDIDATES).where(
                _CANDIDATES.c.study_id == study_id, _CANDIDATES.c.trial_number == trial_number
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(f"trial {trial_number} of study {study!r} not found")
    return row


def _metrics_by_candidate(
    session: Session, candidate_ids: Any, device: str | None
) -> dict[int, tuple[DeviceMetricsRecord, ...]]:
    from sqlalchemy import select

    query = select(_METRICS).where(_METRICS.c.candidate_id.in_(candidate_ids))
    if device is not None:
        query = query.where(_METRICS.c.device == device)
    grouped: dict[int, list[DeviceMetricsRecord]] = {}
    for row in session.execute(query.order_by(_METRICS.c.device)).mappings():
        grouped.setdefault(row["candidate_id"], []).append(_metrics_record(row))
    return {k: tuple(v) for k, v in grouped.items()}


def _diff(stored: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> list[str]:
    keys = sorted(set(stored) | set(new))
    return [f"{prefix}{k}" for k in keys if stored.get(k) != new.get(k)]


# ---------------------------------------------------------------------------- studies


def create_study(
    storage: Storage,
    *,
    name: str,
    config: Mapping[str, Any],
    devices: Sequence[str],
    objectives: Sequence[ObjectiveRecord | Mapping[str, Any]],
    seed: int,
    optuna_study_name: str | None = None,
) -> StudyRecord:
    """Store a new study, or return the stored one if it has exactly this definition.

    Calling it again with the same arguments (a second worker, a restarted process)
    returns the existing study unchanged, status included.

    Args:
        name: Unique study name (1-200 characters).
        config: The full validated study configuration (JSON-serialisable).
        devices: Target device names, distinct, at least one.
        objectives: ``ObjectiveRecord`` or mappings ``{name, device, direction}``.
        seed: The study's seed.
        optuna_study_name: Name of the Optuna study in the same database (default: name).

    Raises:
        ConfigError: Invalid arguments, or ``study``: a study with this name exists with a
            different config, devices, objectives, seed or Optuna study name.
    """
    from sqlalchemy import select

    _check_name("study", name, _NAME_MAX)
    values = {
        "name": name,
        "optuna_study_name": _check_name("optuna_study_name", optuna_study_name or name, 512),
        "config": _check_json(
            "config", dict(config) if isinstance(config, Mapping) else config, dict
        ),
        "devices": _devices(devices),
        "objectives": _objectives(objectives),
        "seed": _check_int("seed", seed, minimum=-(2**31)),
        "status": "running",
    }

    def work(session: Session) -> StudyRecord:
        now = utcnow()
        stmt = _insert(session, _STUDIES).values(**values, created_at=now, updated_at=now)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        row = session.execute(select(_STUDIES).where(_STUDIES.c.name == name)).mappings().one()
        differs = _diff(row["config"], values["config"], "config.")
        for key in ("devices", "objectives", "seed", "optuna_study_name"):
            if row[key] != values[key]:
                differs.append(key)
        if differs:
            raise ConfigError(
                "study",
                name,
                "a name not in use, or exactly the stored study's definition "
                f"(a study {name!r} exists; it differs in {', '.join(differs)})",
            )
        return _study_record(row)

    return storage.run(work)


def get_study(storage: Storage, *, name: str) -> StudyRecord:
    """The study called ``name``.

    Raises:
        NotFoundError: No such study (the message lists stored ones).
    """
    return storage.run(lambda s: _study_record(_study_row(s, name)), readonly=True)


def list_studies(storage: Storage) -> tuple[StudySummary, ...]:
    """Every study, oldest first, with its number of trials in each state."""
    from sqlalchemy import func, select

    def work(session: Session) -> tuple[StudySummary, ...]:
        counts: dict[int, dict[str, int]] = {}
        grouped = select(
            _CANDIDATES.c.study_id, _CANDIDATES.c.state, func.count().label("n")
        ).group_by(_CANDIDATES.c.study_id, _CANDIDATES.c.state)
        for study_id, state, n in session.execute(grouped):
            counts.setdefault(study_id, {})[state] = n
        out = []
        for row in session.execute(select(_STUDIES).order_by(_STUDIES.c.id)).mappings():
            c = counts.get(row["id"], {})
            out.append(
                StudySummary(
                    study=_study_record(row),
                    trials_complete=c.get("complete", 0),
                    trials_failed=c.get("failed", 0),
                    trials_running=c.get("running", 0),
                    trials_pruned=c.get("pruned", 0),
                )
            )
        return tuple(out)

    return storage.run(work, readonly=True)


def set_study_status(storage: Storage, *, study: str, status: StudyStatus) -> StudyRecord:
    """Set a study's status (``running``, ``finished``, ``stopped``, ``failed``).

    Raises:
        ConfigError: Unknown status.
        NotFoundError: No such study.
    """
    from sqlalchemy import update

    _check_choice("status", status, STUDY_STATUSES)

    def work(session: Session) -> StudyRecord:
        row = _study_row(session, study, for_update=True)
        session.execute(
            update(_STUDIES)
            .where(_STUDIES.c.id == row["id"])
            .values(status=status, updated_at=utcnow())
        )
        return _study_record(_study_row(session, study))

    return storage.run(work)


def add_study_device(storage: Storage, *, study: str, device: str) -> StudyRecord:
    """Add ``device`` to a study's target devices (``paretoedge add-device``); idempotent.

    Raises:
        NotFoundError: No such study.
    """
    from sqlalchemy import update

    _check_name("device", device, _DEVICE_MAX)

    def work(session: Session) -> StudyRecord:
        row = _study_row(session, study, for_update=True)
        if device not in row["devices"]:
            session.execute(
                update(_STUDIES)
                .where(_STUDIES.c.id == row["id"])
                .values(devices=[*row["devices"], device], updated_at=utcnow())
            )
        return _study_record(_study_row(session, study))

    return storage.run(work)


# ---------------------------------------------------------------------------- candidates


def upsert_candidate(
    storage: Storage,
    *,
    study: str,
    trial_number: int,
    state: CandidateState,
    spec: Mapping[str, Any],
    accuracy: float | None = None,
    test_accuracy: float | None = None,
    size_bytes: int | None = None,
    parameters: int | None = None,
    sparsity: float | None = None,
    fidelity: int | None = None,
    wall_s: float | None = None,
    is_baseline: bool = False,
    baseline_name: str | None = None,
) -> CandidateRecord:
    """Insert or update the candidate of ``(study, trial_number)`` in one statement.

    Writing the same trial twice (a retried write, a second worker) updates the one row.
    A measurement passed as ``None`` keeps the stored value (so writing ``running`` again
    cannot erase an accuracy), and a finished state (``complete``, ``pruned``,
    ``failed``) is never turned back into ``running``.

    Returns:
        The stored candidate; its ``metrics`` are not loaded (empty).

    Raises:
        ConfigError: Invalid values (the message names the field).
        NotFoundError: No such study.
    """
    from sqlalchemy import and_, case, func, update

    _check_int("trial_number", trial_number)
    _check_choice("state", state, CANDIDATE_STATES)
    spec_json = _check_json("spec", dict(spec) if isinstance(spec, Mapping) else spec, dict)
    measured = {
        "accuracy": _check_float("accuracy", accuracy),
        "test_accuracy": _check_float("test_accuracy", test_accuracy),
        "size_bytes": _check_int("size_bytes", size_bytes, optional=True),
        "parameters": _check_int("parameters", parameters, optional=True),
        "sparsity": _check_float("sparsity", sparsity, minimum=0.0, maximum=1.0),
        "fidelity": _check_int("fidelity", fidelity, optional=True),
        "wall_s": _check_float("wall_s", wall_s, minimum=0.0),
    }
    if not isinstance(is_baseline, bool):
        raise ConfigError("is_baseline", is_baseline, "true, false")
    if baseline_name is not None:
        _check_name("baseline_name", baseline_name, 64)

    def work(session: Session) -> CandidateRecord:
        study_id = _study_row(session, study)["id"]
        now = utcnow()
        stmt = _insert(session, _CANDIDATES).values(
            study_id=study_id,
            trial_number=trial_number,
            state=state,
            spec=spec_json,
            is_baseline=is_baseline,
            baseline_name=baseline_name,
            created_at=now,
            updated_at=now,
            **measured,
        )
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["study_id", "trial_number"],
            set_={
                "state": case(
                    (
                        and_(_CANDIDATES.c.state.in_(_FINISHED), new.state == "running"),
                        _CANDIDATES.c.state,
                    ),
                    else_=new.state,
                ),
                "spec": new.spec,
                "is_baseline": new.is_baseline,
                "baseline_name": func.coalesce(new.baseline_name, _CANDIDATES.c.baseline_name),
                "updated_at": new.updated_at,
                **{k: func.coalesce(new[k], _CANDIDATES.c[k]) for k in measured},
            },
        ).returning(*_CANDIDATES.c)
        row = session.execute(stmt).mappings().one()
        # Keep the sort keys copied into pe_front equal to the candidate's values.
        session.execute(
            update(_FRONT)
            .where(_FRONT.c.candidate_id == row["id"])
            .values(accuracy=row["accuracy"], size_bytes=row["size_bytes"])
        )
        return _candidate_record(row)

    return storage.run(work)


def set_test_accuracy(
    storage: Storage, *, study: str, trial_number: int, test_accuracy: float
) -> CandidateRecord:
    """Record the held-out test accuracy of a candidate (done for front members only).

    Raises:
        NotFoundError: No such study or trial.
    """
    from sqlalchemy import update

    value = _check_float("test_accuracy", test_accuracy, optional=False)

    def work(session: Session) -> CandidateRecord:
        study_id = _study_row(session, study)["id"]
        row = _candidate_row(session, study_id, trial_number, study)
        session.execute(
            update(_CANDIDATES)
            .where(_CANDIDATES.c.id == row["id"])
            .values(test_accuracy=value, updated_at=utcnow())
        )
        return _candidate_record(_candidate_row(session, study_id, trial_number, study))

    return storage.run(work)


def get_candidate(storage: Storage, *, study: str, trial_number: int) -> CandidateRecord:
    """One candidate with its metrics on every device it was scored on.

    Raises:
        NotFoundError: No such study or trial.
    """

    def work(session: Session) -> CandidateRecord:
        study_id = _study_row(session, study)["id"]
        row = _candidate_row(session, study_id, trial_number, study)
        metrics = _metrics_by_candidate(session, [row["id"]], None)
        return _candidate_record(row, metrics.get(row["id"], ()))

    return storage.run(work, readonly=True)


def list_candidates(
    storage: Storage,
    *,
    study: str,
    states: Iterable[CandidateState] | None = None,
    device: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[CandidateRecord, ...]:
    """The candidates of a study by trial number, with their device metrics.

    Args:
        states: Only candidates in these states (default: all).
        device: Load only this device's metrics (default: every device's).
        limit: Page size, at most ``MAX_PAGE_SIZE``; ``None`` returns every candidate
            (for the controller; HTTP callers must pass a limit).
        offset: Candidates to skip.

    Raises:
        ConfigError: Unknown state, bad limit or offset.
        NotFoundError: No such study.
    """
    from sqlalchemy import select

    state_list = None
    if states is not None:
        state_list = [_check_choice("states", s, CANDIDATE_STATES) for s in states]
    _check_page(limit, offset, optional_limit=True)

    def work(session: Session) -> tuple[CandidateRecord, ...]:
        study_id = _study_row(session, study)["id"]
        query = select(_CANDIDATES).where(_CANDIDATES.c.study_id == study_id)
        if state_list is not None:
            query = query.where(_CANDIDATES.c.state.in_(state_list))
        query = query.order_by(_CANDIDATES.c.trial_number).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        rows = session.execute(query).mappings().all()
        if not rows:
            return ()
        if limit is None and state_list is None:
            ids: Any = select(_CANDIDATES.c.id).where(_CANDIDATES.c.study_id == study_id)
        else:
            ids = [r["id"] for r in rows]
        metrics = _metrics_by_candidate(session, ids, device)
        return tuple(_candidate_record(r, metrics.get(r["id"], ())) for r in rows)

    return storage.run(work, readonly=True)


# ---------------------------------------------------------------------------- device metrics


def _metrics_values(m: DeviceMetricsRecord, where: str) -> dict[str, Any]:
    _check_int(f"{where}candidate_id", m.candidate_id, minimum=1)
    violations = m.violations
    if isinstance(violations, str) or not all(isinstance(v, str) for v in violations):
        raise ConfigError(f"{where}violations", violations, "a list of strings")
    latency = _check_float(f"{where}latency_ms", m.latency_ms, minimum=0.0, optional=False)
    worst = _check_float(f"{where}latency_worst_ms", m.latency_worst_ms, minimum=0.0)
    # An early-exit model's expected latency mixes prefix latencies, none above the full
    # path's (a rounding margin for a mix that is all full path).
    if worst is not None and worst < latency * (1 - 1e-9):
        raise ConfigError(
            f"{where}latency_worst_ms", worst, f"a number >= latency_ms ({latency:g})"
        )
    return {
        "candidate_id": m.candidate_id,
        "device": _check_name(f"{where}device", m.device, _DEVICE_MAX),
        "latency_ms": latency,
        "peak_memory_bytes": _check_int(f"{where}peak_memory_bytes", m.peak_memory_bytes),
        "energy_mj": _check_float(f"{where}energy_mj", m.energy_mj, minimum=0.0),
        "flash_bytes": _check_int(f"{where}flash_bytes", m.flash_bytes, optional=True),
        "sram_bytes": _check_int(f"{where}sram_bytes", m.sram_bytes, optional=True),
        "feasible": bool(m.feasible),
        "violations": list(violations),
        "latency_worst_ms": worst,
    }


def upsert_device_metrics_many(storage: Storage, *, metrics: Sequence[DeviceMetricsRecord]) -> int:
    """Insert or replace many ``(candidate, device)`` metrics in one transaction.

    Device metrics are deterministic predictions, so the last write wins.

    Returns:
        The number of rows written.

    Raises:
        ConfigError: Invalid values (the message names ``metrics[i].field``).
        NotFoundError: A candidate id does not exist.
    """
    from sqlalchemy import bindparam, select, update

    values = [_metrics_values(m, f"metrics[{i}].") for i, m in enumerate(metrics)]
    if not values:
        return 0
    wanted = {v["candidate_id"] for v in values}

    def work(session: Session) -> int:
        found = set(
            session.execute(select(_CANDIDATES.c.id).where(_CANDIDATES.c.id.in_(wanted)))
            .scalars()
            .all()
        )
        missing = sorted(wanted - found)
        if missing:
            raise NotFoundError(f"candidate ids not found: {', '.join(map(str, missing[:10]))}")
        stmt = _insert(session, _METRICS)
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["candidate_id", "device"],
            set_={k: new[k] for k in values[0] if k not in ("candidate_id", "device")},
        )
        sync = (
            update(_FRONT)
            .where(_FRONT.c.candidate_id == bindparam("cid"), _FRONT.c.device == bindparam("dev"))
            .values(latency_ms=bindparam("lat"))
        )
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            session.execute(stmt, chunk)
            # Keep the latency copied into pe_front equal to the metrics row.
            session.execute(
                sync,
                [
                    {"cid": v["candidate_id"], "dev": v["device"], "lat": v["latency_ms"]}
                    for v in chunk
                ],
            )
        return len(values)

    return storage.run(work)


def upsert_device_metrics(
    storage: Storage,
    *,
    candidate_id: int,
    device: str,
    latency_ms: float,
    peak_memory_bytes: int,
    energy_mj: float | None = None,
    flash_bytes: int | None = None,
    sram_bytes: int | None = None,
    feasible: bool = True,
    violations: Sequence[str] = (),
    latency_worst_ms: float | None = None,
) -> DeviceMetricsRecord:
    """Insert or replace the metrics of one candidate on one device.

    Raises:
        ConfigError: Invalid values (the message names the field).
        NotFoundError: The candidate does not exist.
    """
    record = DeviceMetricsRecord(
        candidate_id=candidate_id,
        device=device,
        latency_ms=latency_ms,
        peak_memory_bytes=peak_memory_bytes,
        energy_mj=energy_mj,
        flash_bytes=flash_bytes,
        sram_bytes=sram_bytes,
        feasible=feasible,
        violations=tuple(violations),
        latency_worst_ms=latency_worst_ms,
    )
    values = _metrics_values(record, "")
    upsert_device_metrics_many(storage, metrics=[record])
    return DeviceMetricsRecord(**{**values, "violations": tuple(values["violations"])})


# ---------------------------------------------------------------------------- fronts


def replace_front(storage: Storage, *, study: str, device: str, ranks: Mapping[int, int]) -> int:
    """Replace the ranking of ``study`` on ``device`` in one transaction.

    Args:
        ranks: Candidate id -> non-dominated-sort rank (0 = the Pareto front). Every
            candidate must belong to the study and have metrics on ``device``.
            Candidates left out are unranked (not shown by :func:`get_front`).

    Returns:
        The number of ranked candidates stored.

    Raises:
        ConfigError: A rank is not an integer >= 0.
        NotFoundError: No such study.
        StorageError: A candidate is not in the study or has no metrics on ``device``;
            nothing is changed then.
    """
    from sqlalchemy import delete, select

    _check_name("device", device, _DEVICE_MAX)
    rows = []
    for cid, rank in ranks.items():
        _check_int(f"ranks[{cid}]", rank)
        rows.append({"candidate_id": _check_int("ranks", cid, minimum=1), "rank": rank})

    def work(session: Session) -> int:
        # Locking the study row serialises concurrent replacements of its fronts: without
        # it, two PostgreSQL transactions could both delete and then both insert.
        study_id = _study_row(session, study, for_update=True)["id"]
        keys: dict[int, tuple[float, float | None, int | None]] = {}
        ids = [r["candidate_id"] for r in rows]
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            found = session.execute(
                select(
                    _METRICS.c.candidate_id,
                    _METRICS.c.latency_ms,
                    _CANDIDATES.c.accuracy,
                    _CANDIDATES.c.size_bytes,
                )
                .join(_CANDIDATES, _CANDIDATES.c.id == _METRICS.c.candidate_id)
                .where(
                    _CANDIDATES.c.study_id == study_id,
                    _METRICS.c.device == device,
                    _METRICS.c.candidate_id.in_(chunk),
                )
            )
            for cid, latency, accuracy, size in found:
                keys[cid] = (latency, accuracy, size)
        bad = sorted(set(ids) - set(keys))
        if bad:
            raise StorageError(
                f"cannot rank candidates {', '.join(map(str, bad[:10]))} on {device!r}: "
                f"not candidates of study {study!r} with metrics on that device"
            )
        session.execute(
            delete(_FRONT).where(_FRONT.c.study_id == study_id, _FRONT.c.device == device)
        )
        payload = [
            {
                "study_id": study_id,
                "device": device,
                "candidate_id": r["candidate_id"],
                "rank": r["rank"],
                "latency_ms": keys[r["candidate_id"]][0],
                "accuracy": keys[r["candidate_id"]][1],
                "size_bytes": keys[r["candidate_id"]][2],
            }
            for r in rows
        ]
        for start in range(0, len(payload), 5000):
            session.execute(_FRONT.insert(), payload[start : start + 5000])
        return len(rows)

    return storage.run(work)


def get_front(
    storage: Storage,
    *,
    study: str,
    device: str,
    max_latency_ms: float | None = None,
    min_accuracy: float | None = None,
    max_size_bytes: int | None = None,
    sort: FrontSort = "latency",
    limit: int = 100,
    offset: int = 0,
    max_rank: int | None = 0,
    baselines: bool = False,
) -> FrontPage:
    """The ranked candidates of a study on one device, filtered, sorted and paged.

    Answered from the precomputed ``pe_front`` membership through its
    ``(study_id, device, rank)`` index; candidates and device metrics are joined by key.

    Args:
        max_latency_ms: Keep candidates at most this slow on ``device``.
        min_accuracy: Keep candidates at least this accurate (validation accuracy).
        max_size_bytes: Keep candidates at most this large.
        sort: ``latency`` (fastest first), ``accuracy`` (most accurate first) or
            ``size`` (smallest first); ties broken by the other metrics, then by
            candidate id (the order candidates were first stored).
        limit: Page size, 1 to ``MAX_PAGE_SIZE``.
        offset: Entries to skip.
        max_rank: Highest rank included: 0 (default) is the Pareto front itself,
            ``None`` every ranked candidate (for plots that show dominated ones).
        baselines: Also include the study's baselines (teacher, int8) at any rank, as
            reference rows after the front (their ``rank`` says whether they are on it).

    Raises:
        ConfigError: Invalid filter, sort, limit or offset (the message names it).
        NotFoundError: No such study, or ``device`` is not one of its devices.
    """
    from sqlalchemy import func, select

    _check_choice("sort", sort, FRONT_SORTS)
    _check_page(limit, offset, optional_limit=False)
    _check_int("max_rank", max_rank, optional=True)
    max_latency = _check_float("max_latency_ms", max_latency_ms, minimum=0.0)
    min_acc = _check_float("min_accuracy", min_accuracy)
    max_size = _check_int("max_size_bytes", max_size_bytes, optional=True)

    f, c, m, st = _FRONT, _CANDIDATES, _METRICS, _STUDIES
    study_id = select(st.c.id).where(st.c.name == study).scalar_subquery()
    conditions = [f.c.study_id == study_id, f.c.device == device]
    if max_rank is not None:
        within = f.c.rank <= max_rank
        if baselines:
            baseline_ids = select(c.c.id).where(c.c.study_id == study_id, c.c.is_baseline)
            within = within | f.c.candidate_id.in_(baseline_ids)
        conditions.append(within)
    if max_latency is not None:
        conditions.append(f.c.latency_ms <= max_latency)
    if min_acc is not None:
        conditions.append(f.c.accuracy >= min_acc)
    if max_size is not None:
        conditions.append(f.c.size_bytes <= max_size)

    def order(t: Any) -> list[Any]:
        keys = {
            "latency": [t.c.latency_ms.asc(), t.c.accuracy.desc().nulls_last()],
            "accuracy": [t.c.accuracy.desc().nulls_last(), t.c.latency_ms.asc()],
            "size": [t.c.size_bytes.asc().nulls_last(), t.c.accuracy.desc().nulls_last()],
        }[sort]
        return [t.c.rank, *keys, t.c.candidate_id]

    # Phase 1 reads pe_front alone (filter, sort, count as a window before LIMIT);
    # phase 2 joins the wide candidate and metrics rows of that page only. One
    # statement: one round trip, one snapshot.
    page = (
        select(
            f.c.candidate_id,
            f.c.rank,
            f.c.latency_ms,
            f.c.accuracy,
            f.c.size_bytes,
            func.count().over().label("pe_total"),
        )
        .where(*conditions)
        .order_by(*order(f))
        .limit(limit)
        .offset(offset)
        .subquery("page")
    )
    metric_cols = [col.label(f"m_{col.name}") for col in m.c if col.name != "id"]
    page_query = (
        select(page.c.rank, page.c.pe_total, *c.c, *metric_cols)
        .select_from(
            page.join(c, c.c.id == page.c.candidate_id).join(
                m, (m.c.candidate_id == page.c.candidate_id) & (m.c.device == device)
            )
        )
        .order_by(*order(page))
    )
    count_query = select(func.count()).select_from(f).where(*conditions)

    def work(session: Session) -> FrontPage:
        rows = session.execute(page_query).mappings().all()
        if rows:
            total = rows[0]["pe_total"]
        else:
            # Nothing matched: tell a wrong study or device from an empty result.
            study_row = _study_row(session, study)
            if (
                device not in study_row["devices"]
                and not session.execute(
                    select(f.c.rank)
                    .where(f.c.study_id == study_row["id"], f.c.device == device)
                    .limit(1)
                ).first()
            ):
                raise NotFoundError(
                    f"device {device!r} is not a device of study {study!r} "
                    f"(its devices: {', '.join(study_row['devices'])})"
                )
            total = 0
            if offset > 0:
                total = session.execute(count_query).scalar_one()
        entries = []
        for r in rows:
            metrics = _metrics_record(r, "m_")
            entries.append(
                FrontEntry(
                    rank=r["rank"], candidate=_candidate_record(r, (metrics,)), metrics=metrics
                )
            )
        return FrontPage(
            study=study,
            device=device,
            total=total,
            limit=limit,
            offset=offset,
            entries=tuple(entries),
        )

    return storage.run(work, readonly=True, snapshot=False)


# ---------------------------------------------------------------------------- artifacts


def add_artifact(
    storage: Storage,
    *,
    candidate_id: int,
    kind: ArtifactKind,
    path: str,
    sha256: str,
    bytes: int,
) -> ArtifactRecord:
    """Record a file produced for a candidate; the same ``(kind, path)`` is updated.

    Raises:
        ConfigError: Unknown kind, or a sha256 that is not 64 hex digits.
        NotFoundError: The candidate does not exist.
    """
    from sqlalchemy import select

    _check_int("candidate_id", candidate_id, minimum=1)
    _check_choice("kind", kind, ARTIFACT_KINDS)
    _check_name("path", path, 1024)
    if (
        not isinstance(sha256, str)
        or len(sha256) != 64
        or any(ch not in "0123456789abcdef" for ch in sha256)
    ):
        raise ConfigError("sha256", sha256, "64 lowercase hexadecimal digits")
    _check_int("bytes", bytes)

    def work(session: Session) -> ArtifactRecord:
        exists = session.execute(
            select(_CANDIDATES.c.id).where(_CANDIDATES.c.id == candidate_id)
        ).first()
        if exists is None:
            raise NotFoundError(f"candidate id {candidate_id} not found")
        stmt = _insert(session, _ARTIFACTS).values(
            candidate_id=candidate_id,
            kind=kind,
            path=path,
            sha256=sha256,
            bytes=bytes,
            created_at=utcnow(),
        )
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["candidate_id", "kind", "path"],
            set_={"sha256": new.sha256, "bytes": new.bytes, "created_at": new.created_at},
        ).returning(*_ARTIFACTS.c)
        return _artifact_record(session.execute(stmt).mappings().one())

    return storage.run(work)


def list_artifacts(storage: Storage, *, candidate_id: int) -> tuple[ArtifactRecord, ...]:
    """The artifacts recorded for a candidate, oldest first."""
    from sqlalchemy import select

    def work(session: Session) -> tuple[ArtifactRecord, ...]:
        rows = session.execute(
            select(_ARTIFACTS)
            .where(_ARTIFACTS.c.candidate_id == candidate_id)
            .order_by(_ARTIFACTS.c.id)
        ).mappings()
        return tuple(_artifact_record(r) for r in rows)

    return storage.run(work, readonly=True)
