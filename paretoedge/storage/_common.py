"""What the data-access modules share: table handles, argument checks, the dialect's
INSERT and the lookups of a study and a candidate row.

Every check raises :class:`~paretoedge.errors.ConfigError` naming the field, the value and
what is allowed, before any transaction starts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from paretoedge.errors import ConfigError, NotFoundError
from paretoedge.storage._models import (
    ArtifactRow,
    CandidateRow,
    DeviceMetricsRow,
    FrontRow,
    StudyRow,
)
from paretoedge.storage._records import MAX_PAGE_SIZE

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sqlalchemy import RowMapping, Table
    from sqlalchemy.orm import Session

    from paretoedge.storage._engine import Storage


STUDIES = cast("Table", StudyRow.__table__)
CANDIDATES = cast("Table", CandidateRow.__table__)
METRICS = cast("Table", DeviceMetricsRow.__table__)
FRONT = cast("Table", FrontRow.__table__)
ARTIFACTS = cast("Table", ArtifactRow.__table__)
FINISHED = ("complete", "pruned", "failed")
R = TypeVar("R")
NAME_MAX = 200
DEVICE_MAX = 64


def check_name(field: str, value: object, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ConfigError(field, value, f"a non-empty string of at most {max_len} characters")
    return value


def check_choice(field: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(field, value, allowed)
    return cast(str, value)


def check_int(field: str, value: object, *, minimum: int = 0, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(field, value, f"an integer >= {minimum}")
    return value


def check_float(
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


def check_json(field: str, value: object, kind: type) -> Any:
    if not isinstance(value, kind):
        raise ConfigError(field, value, f"a JSON {kind.__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(field, value, f"JSON-serialisable values only ({exc})") from exc


def check_page(limit: object, offset: object, *, optional_limit: bool) -> None:
    if not (optional_limit and limit is None):
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ConfigError("limit", limit, f"an integer in [1, {MAX_PAGE_SIZE}]")
    check_int("offset", offset)


def insert_for(session: Session, table: Any) -> Any:
    """The dialect's INSERT (both SQLite and PostgreSQL support ON CONFLICT)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def upsert_candidate_device_row(
    storage: Storage,
    table: Table,
    values: Mapping[str, Any],
    record: Callable[[Mapping[str, Any]], R],
) -> R:
    """Insert or replace the row of ``values``'s ``(candidate_id, device)`` in ``table`` (a
    table keyed by candidate and device, e.g. measurements); returns ``record(values)``.

    Raises:
        NotFoundError: The candidate does not exist.
    """

    candidate_id = values["candidate_id"]

    def work(session: Session) -> R:
        require_candidate(session, candidate_id)
        stmt = insert_for(session, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["candidate_id", "device"],
            set_={k: stmt.excluded[k] for k in values if k not in ("candidate_id", "device")},
        )
        session.execute(stmt, [dict(values)])
        return record(values)

    return storage.run(work)


def candidate_device_rows(
    storage: Storage,
    table: Table,
    *,
    candidate_ids: list[int],
    device: str,
    record: Callable[[Mapping[Any, Any]], R],
) -> dict[int, R]:
    """The rows of ``candidate_ids`` on ``device`` in ``table``, as records by candidate id."""
    from sqlalchemy import select

    if not candidate_ids:
        return {}

    def work(session: Session) -> dict[int, R]:
        rows = session.execute(
            select(table).where(table.c.candidate_id.in_(candidate_ids), table.c.device == device)
        ).mappings()
        return {r["candidate_id"]: record(r) for r in rows}

    return storage.run(work, readonly=True, snapshot=False)


def require_candidate(session: Session, candidate_id: int) -> None:
    """Raise :class:`NotFoundError` unless a candidate with id ``candidate_id`` exists (before
    writing a row that refers to it, so the error names the id instead of a foreign key)."""
    from sqlalchemy import select

    found = session.execute(select(CANDIDATES.c.id).where(CANDIDATES.c.id == candidate_id)).first()
    if found is None:
        raise NotFoundError(f"candidate id {candidate_id} not found")


def study_row(session: Session, name: str, *, for_update: bool = False) -> RowMapping:
    from sqlalchemy import select

    query = select(STUDIES).where(STUDIES.c.name == name)
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).mappings().first()
    if row is None:
        known = session.execute(select(STUDIES.c.name).order_by(STUDIES.c.name).limit(20))
        names = ", ".join(known.scalars()) or "none"
        raise NotFoundError(f"study {name!r} not found (stored studies: {names})")
    return row


def candidate_row(session: Session, study_id: int, trial_number: int, study: str) -> RowMapping:
    from sqlalchemy import select

    row = (
        session.execute(
            select(CANDIDATES).where(
                CANDIDATES.c.study_id == study_id, CANDIDATES.c.trial_number == trial_number
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(f"trial {trial_number} of study {study!r} not found")
    return row
