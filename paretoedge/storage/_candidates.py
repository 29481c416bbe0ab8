"""Candidates (one per trial) and their per-device metrics.

``upsert_candidate`` and ``upsert_device_metrics`` are single ``INSERT ... ON CONFLICT DO
UPDATE`` statements on their unique keys, so two processes (or a retried trial) writing
the same ``(study, trial_number)`` or ``(candidate, device)`` never create a duplicate and
never fail on the unique constraint. The copies of accuracy, size and latency kept in
``pe_front`` are updated in the same transaction as their source rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, NotFoundError
from paretoedge.storage._common import (
    CANDIDATES,
    DEVICE_MAX,
    FINISHED,
    FRONT,
    METRICS,
    candidate_row,
    check_choice,
    check_float,
    check_int,
    check_name,
    check_page,
    insert_for,
    study_row,
)
from paretoedge.storage._convert import candidate_record, metrics_record, typed_spec
from paretoedge.storage._models import utcnow
from paretoedge.storage._records import (
    CANDIDATE_STATES,
    CandidateRecord,
    CandidateState,
    CandidateValues,
    DeviceMetricsRecord,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from paretoedge.compression import CompressionSpec
    from paretoedge.storage._engine import Storage


def _metrics_by_candidate(
    session: Session, candidate_ids: Any, device: str | None
) -> dict[int, tuple[DeviceMetricsRecord, ...]]:
    from sqlalchemy import select

    query = select(METRICS).where(METRICS.c.candidate_id.in_(candidate_ids))
    if device is not None:
        query = query.where(METRICS.c.device == device)
    grouped: dict[int, list[DeviceMetricsRecord]] = {}
    for row in session.execute(query.order_by(METRICS.c.device)).mappings():
        grouped.setdefault(row["candidate_id"], []).append(metrics_record(row))
    return {k: tuple(v) for k, v in grouped.items()}


def upsert_candidate(
    storage: Storage,
    *,
    study: str,
    trial_number: int,
    state: CandidateState,
    spec: CompressionSpec | Mapping[str, Any],
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

    ``spec`` is stored as its versioned document; flat dotted keys are accepted and read
    like ``--set`` (:meth:`CompressionSpec.from_flat`). Writing the same trial twice (a
    retried write, a second worker) updates the one row.
    A measurement passed as ``None`` keeps the stored value (so writing ``running`` again
    cannot erase an accuracy), and a finished state (``complete``, ``pruned``,
    ``failed``) is never turned back into ``running``.

    Returns:
        The stored candidate; its ``metrics`` are not loaded (empty).

    Raises:
        ConfigError: Invalid values (the message names the field).
        NotFoundError: No such study.
    """
    values = CandidateValues(
        accuracy=accuracy,
        test_accuracy=test_accuracy,
        size_bytes=size_bytes,
        parameters=parameters,
        sparsity=sparsity,
        fidelity=fidelity,
        wall_s=wall_s,
    )
    return storage.run(
        candidate_upsert(
            study=study,
            trial_number=trial_number,
            state=state,
            spec=spec,
            values=values,
            is_baseline=is_baseline,
            baseline_name=baseline_name,
        )
    )


#: No measurement: every column keeps its stored value.
_NO_VALUES = CandidateValues()


def _checked_values(values: CandidateValues) -> dict[str, Any]:
    """``values`` as the candidate table's columns, each checked (the error names it).

    Raises:
        ConfigError: A value of the wrong type or out of range.
    """
    return {
        "accuracy": check_float("accuracy", values.accuracy),
        "test_accuracy": check_float("test_accuracy", values.test_accuracy),
        "size_bytes": check_int("size_bytes", values.size_bytes, optional=True),
        "parameters": check_int("parameters", values.parameters, optional=True),
        "sparsity": check_float("sparsity", values.sparsity, minimum=0.0, maximum=1.0),
        "fidelity": check_int("fidelity", values.fidelity, optional=True),
        "wall_s": check_float("wall_s", values.wall_s, minimum=0.0),
    }


def candidate_upsert(
    *,
    study: str,
    trial_number: int,
    state: CandidateState,
    spec: CompressionSpec | Mapping[str, Any],
    values: CandidateValues = _NO_VALUES,
    is_baseline: bool = False,
    baseline_name: str | None = None,
) -> Callable[[Session], CandidateRecord]:
    """:func:`upsert_candidate`'s arguments checked now, its statements as a function of a
    session (for transactions that write a candidate together with other rows)."""
    from sqlalchemy import and_, case, func, update

    check_int("trial_number", trial_number)
    check_choice("state", state, CANDIDATE_STATES)
    typed = typed_spec(spec)
    spec_json = typed.to_dict()
    spec_hash = typed.digest()
    measured = _checked_values(values)
    if not isinstance(is_baseline, bool):
        raise ConfigError("is_baseline", is_baseline, "true, false")
    if baseline_name is not None:
        check_name("baseline_name", baseline_name, 64)

    def work(session: Session) -> CandidateRecord:
        study_id = study_row(session, study)["id"]
        now = utcnow()
        stmt = insert_for(session, CANDIDATES).values(
            study_id=study_id,
            trial_number=trial_number,
            state=state,
            spec=spec_json,
            spec_hash=spec_hash,
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
                        and_(CANDIDATES.c.state.in_(FINISHED), new.state == "running"),
                        CANDIDATES.c.state,
                    ),
                    else_=new.state,
                ),
                "spec": new.spec,
                "spec_hash": new.spec_hash,
                "is_baseline": new.is_baseline,
                "baseline_name": func.coalesce(new.baseline_name, CANDIDATES.c.baseline_name),
                "updated_at": new.updated_at,
                **{k: func.coalesce(new[k], CANDIDATES.c[k]) for k in measured},
            },
        ).returning(*CANDIDATES.c)
        row = session.execute(stmt).mappings().one()
        # Keep the sort keys copied into pe_front equal to the candidate's values.
        session.execute(
            update(FRONT)
            .where(FRONT.c.candidate_id == row["id"])
            .values(accuracy=row["accuracy"], size_bytes=row["size_bytes"])
        )
        return candidate_record(row)

    return work


def set_test_accuracy(
    storage: Storage, *, study: str, trial_number: int, test_accuracy: float
) -> CandidateRecord:
    """Record the held-out test accuracy of a candidate (done for front members only).

    Raises:
        NotFoundError: No such study or trial.
    """
    from sqlalchemy import update

    value = check_float("test_accuracy", test_accuracy, optional=False)

    def work(session: Session) -> CandidateRecord:
        study_id = study_row(session, study)["id"]
        row = candidate_row(session, study_id, trial_number, study)
        session.execute(
            update(CANDIDATES)
            .where(CANDIDATES.c.id == row["id"])
            .values(test_accuracy=value, updated_at=utcnow())
        )
        return candidate_record(candidate_row(session, study_id, trial_number, study))

    return storage.run(work)


def get_candidate(storage: Storage, *, study: str, trial_number: int) -> CandidateRecord:
    """One candidate with its metrics on every device it was scored on.

    Raises:
        NotFoundError: No such study or trial.
    """

    def work(session: Session) -> CandidateRecord:
        study_id = study_row(session, study)["id"]
        row = candidate_row(session, study_id, trial_number, study)
        metrics = _metrics_by_candidate(session, [row["id"]], None)
        return candidate_record(row, metrics.get(row["id"], ()))

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
        state_list = [check_choice("states", s, CANDIDATE_STATES) for s in states]
    check_page(limit, offset, optional_limit=True)

    def work(session: Session) -> tuple[CandidateRecord, ...]:
        study_id = study_row(session, study)["id"]
        query = select(CANDIDATES).where(CANDIDATES.c.study_id == study_id)
        if state_list is not None:
            query = query.where(CANDIDATES.c.state.in_(state_list))
        query = query.order_by(CANDIDATES.c.trial_number).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        rows = session.execute(query).mappings().all()
        if not rows:
            return ()
        if limit is None and state_list is None:
            ids: Any = select(CANDIDATES.c.id).where(CANDIDATES.c.study_id == study_id)
        else:
            ids = [r["id"] for r in rows]
        metrics = _metrics_by_candidate(session, ids, device)
        return tuple(candidate_record(r, metrics.get(r["id"], ())) for r in rows)

    return storage.run(work, readonly=True)


def candidates_with_spec(
    storage: Storage,
    *,
    study: str,
    spec: CompressionSpec,
    states: Iterable[CandidateState] | None = None,
    baselines: bool = True,
    devices: Sequence[str] = (),
    limit: int | None = None,
) -> tuple[CandidateRecord, ...]:
    """The candidates of a study whose spec equals ``spec``, by trial number, with their
    device metrics.

    One lookup through the ``(study_id, spec_hash)`` index (:meth:`CompressionSpec.digest`),
    whatever the size of the study; the specs found are compared with ``spec`` as well, so
    a digest collision cannot return a different spec.

    Args:
        states: Only candidates in these states (default: all).
        baselines: Include the study's baselines.
        devices: Only candidates with metrics on every one of these devices.
        limit: At most this many (the earliest trials), ``None`` for all.

    Raises:
        ConfigError: Unknown state, bad limit.
        NotFoundError: No such study.
    """
    from sqlalchemy import func, select

    state_list = None
    if states is not None:
        state_list = [check_choice("states", s, CANDIDATE_STATES) for s in states]
    device_list = sorted({check_name("devices", d, DEVICE_MAX) for d in devices})
    check_int("limit", limit, minimum=1, optional=True)
    digest = spec.digest()

    def work(session: Session) -> tuple[CandidateRecord, ...]:
        study_id = study_row(session, study)["id"]
        query = select(CANDIDATES).where(
            CANDIDATES.c.study_id == study_id, CANDIDATES.c.spec_hash == digest
        )
        if state_list is not None:
            query = query.where(CANDIDATES.c.state.in_(state_list))
        if not baselines:
            query = query.where(CANDIDATES.c.is_baseline.is_(False))
        if device_list:
            measured = (
                select(func.count())
                .where(METRICS.c.candidate_id == CANDIDATES.c.id, METRICS.c.device.in_(device_list))
                .scalar_subquery()
            )
            query = query.where(measured == len(device_list))
        query = query.order_by(CANDIDATES.c.trial_number)
        if limit is not None:
            query = query.limit(limit)
        rows = session.execute(query).mappings().all()
        if not rows:
            return ()
        metrics = _metrics_by_candidate(session, [r["id"] for r in rows], None)
        found = (candidate_record(r, metrics.get(r["id"], ())) for r in rows)
        return tuple(c for c in found if c.spec == spec)

    return storage.run(work, readonly=True)


# ---------------------------------------------------------------------------- device metrics


def _metrics_values(m: DeviceMetricsRecord, where: str) -> dict[str, Any]:
    check_int(f"{where}candidate_id", m.candidate_id, minimum=1)
    violations = m.violations
    if isinstance(violations, str) or not all(isinstance(v, str) for v in violations):
        raise ConfigError(f"{where}violations", violations, "a list of strings")
    latency = check_float(f"{where}latency_ms", m.latency_ms, minimum=0.0, optional=False)
    worst = check_float(f"{where}latency_worst_ms", m.latency_worst_ms, minimum=0.0)
    # An early-exit model's expected latency mixes prefix latencies, none above the full
    # path's (a rounding margin for a mix that is all full path).
    if worst is not None and worst < latency * (1 - 1e-9):
        raise ConfigError(
            f"{where}latency_worst_ms", worst, f"a number >= latency_ms ({latency:g})"
        )
    return {
        "candidate_id": m.candidate_id,
        "device": check_name(f"{where}device", m.device, DEVICE_MAX),
        "latency_ms": latency,
        "peak_memory_bytes": check_int(f"{where}peak_memory_bytes", m.peak_memory_bytes),
        "energy_mj": check_float(f"{where}energy_mj", m.energy_mj, minimum=0.0),
        "flash_bytes": check_int(f"{where}flash_bytes", m.flash_bytes, optional=True),
        "sram_bytes": check_int(f"{where}sram_bytes", m.sram_bytes, optional=True),
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
    return storage.run(metrics_upsert(metrics))


def metrics_upsert(metrics: Sequence[DeviceMetricsRecord]) -> Callable[[Session], int]:
    """:func:`upsert_device_metrics_many`'s arguments checked now, its statements as a
    function of a session."""
    from sqlalchemy import bindparam, select, update

    values = [_metrics_values(m, f"metrics[{i}].") for i, m in enumerate(metrics)]
    wanted = {v["candidate_id"] for v in values}

    def work(session: Session) -> int:
        if not values:
            return 0
        found = set(
            session.execute(select(CANDIDATES.c.id).where(CANDIDATES.c.id.in_(wanted)))
            .scalars()
            .all()
        )
        missing = sorted(wanted - found)
        if missing:
            raise NotFoundError(f"candidate ids not found: {', '.join(map(str, missing[:10]))}")
        stmt = insert_for(session, METRICS)
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["candidate_id", "device"],
            set_={k: new[k] for k in values[0] if k not in ("candidate_id", "device")},
        )
        sync = (
            update(FRONT)
            .where(FRONT.c.candidate_id == bindparam("cid"), FRONT.c.device == bindparam("dev"))
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

    return work


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
