"""Fronts: a device's whole ranking swapped in one transaction (:func:`replace_front`), or
extended by one trial's ranks (:func:`extend_fronts`), and filtered, sorted, paged reads
answered from the precomputed ``pe_front`` table.

Every transaction that writes a study's fronts bumps ``pe_studies.front_version`` and
stamps the rows it adds with it (``pe_front.seq``); a whole replacement also records it
as ``front_reset``. A worker that keeps the ranking in memory therefore reads only what
other workers added since the version it last saw (:func:`read_front_changes`), and its
write says which version it extended: a write on top of a version that moved on meanwhile
is refused, and the worker reads the news and ranks again (optimistic concurrency).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from paretoedge.errors import NotFoundError, StorageError
from paretoedge.storage._common import (
    CANDIDATES,
    DEVICE_MAX,
    FRONT,
    METRICS,
    STUDIES,
    check_choice,
    check_float,
    check_int,
    check_name,
    check_page,
    study_row,
)
from paretoedge.storage._convert import candidate_record, metrics_record
from paretoedge.storage._records import (
    FRONT_SORTS,
    FrontChanges,
    FrontEntry,
    FrontPage,
    FrontSort,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from paretoedge.storage._engine import Storage


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
    from sqlalchemy import delete

    check_name("device", device, DEVICE_MAX)
    rows = []
    for cid, rank in ranks.items():
        check_int(f"ranks[{cid}]", rank)
        rows.append({"candidate_id": check_int("ranks", cid, minimum=1), "rank": rank})

    def work(session: Session) -> int:
        # Locking the study row serialises concurrent replacements of its fronts: without
        # it, two PostgreSQL transactions could both delete and then both insert.
        row = study_row(session, study, for_update=True)
        study_id = row["id"]
        ids = [r["candidate_id"] for r in rows]
        keys = _sort_keys(session, study, study_id, device, ids)
        version = _bump(session, study_id, row["front_version"], reset=True)
        session.execute(delete(FRONT).where(FRONT.c.study_id == study_id, FRONT.c.device == device))
        _insert(
            session, study_id, device, {r["candidate_id"]: r["rank"] for r in rows}, keys, version
        )
        return len(rows)

    return storage.run(work)


def _sort_keys(
    session: Session, study: str, study_id: int, device: str, ids: list[int]
) -> dict[int, tuple[float, float | None, int | None]]:
    """Candidate id -> the sort keys copied into ``pe_front`` (latency on ``device``,
    accuracy, size); every id must be a candidate of the study measured on ``device``."""
    from sqlalchemy import select

    keys: dict[int, tuple[float, float | None, int | None]] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        found = session.execute(
            select(
                METRICS.c.candidate_id,
                METRICS.c.latency_ms,
                CANDIDATES.c.accuracy,
                CANDIDATES.c.size_bytes,
            )
            .join(CANDIDATES, CANDIDATES.c.id == METRICS.c.candidate_id)
            .where(
                CANDIDATES.c.study_id == study_id,
                METRICS.c.device == device,
                METRICS.c.candidate_id.in_(chunk),
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
    return keys


def _bump(session: Session, study_id: int, version: int, *, reset: bool) -> int:
    """The study's next front version, stored (and recorded as a reset)."""
    from sqlalchemy import update

    new = version + 1
    values = {"front_version": new, **({"front_reset": new} if reset else {})}
    session.execute(update(STUDIES).where(STUDIES.c.id == study_id).values(**values))
    return new


def _insert(
    session: Session,
    study_id: int,
    device: str,
    ranks: Mapping[int, int],
    keys: Mapping[int, tuple[float, float | None, int | None]],
    version: int,
) -> None:
    payload = [
        {
            "study_id": study_id,
            "device": device,
            "candidate_id": cid,
            "rank": rank,
            "latency_ms": keys[cid][0],
            "accuracy": keys[cid][1],
            "size_bytes": keys[cid][2],
            "seq": version,
        }
        for cid, rank in ranks.items()
    ]
    for start in range(0, len(payload), 5000):
        session.execute(FRONT.insert(), payload[start : start + 5000])


def extend_fronts(
    storage: Storage,
    *,
    study: str,
    version: int,
    added: Mapping[str, Mapping[int, int]],
    reranked: Mapping[str, Mapping[int, int]],
) -> int | None:
    """Add newly ranked candidates to the study's fronts and change the ranks of those
    whose rank they changed, in one transaction, if the fronts are still at ``version``.

    The caller ranked the new candidates against the fronts as of ``version`` (see
    :func:`read_front_changes`); if another writer changed them since, nothing is written
    and ``None`` is returned: read the changes, rank again, retry.

    Args:
        version: The study's ``front_version`` the ranking was computed on.
        added: Device -> candidate id -> rank, for candidates not ranked on that device yet.
        reranked: Device -> candidate id -> new rank, for ranked candidates.

    Returns:
        The new front version, or ``None`` when the fronts moved on since ``version``.

    Raises:
        ConfigError: A rank or id that is not an integer >= 0 (>= 1 for ids).
        NotFoundError: No such study.
        StorageError: An added candidate is not in the study or has no metrics on its
            device; nothing is changed then.
    """
    return storage.run(
        front_extension(study=study, version=version, added=added, reranked=reranked)
    )


def front_extension(
    *,
    study: str,
    version: int,
    added: Mapping[str, Mapping[int, int]],
    reranked: Mapping[str, Mapping[int, int]],
) -> Callable[[Session], int | None]:
    """:func:`extend_fronts`'s arguments checked now, its statements as a function of a
    session."""
    from sqlalchemy import bindparam, update

    for device, ranks in [*added.items(), *reranked.items()]:
        check_name("device", device, DEVICE_MAX)
        for cid, rank in ranks.items():
            check_int("ranks", cid, minimum=1)
            check_int(f"ranks[{cid}]", rank)
    check_int("version", version)

    def work(session: Session) -> int | None:
        row = study_row(session, study, for_update=True)
        if row["front_version"] != version:
            return None
        study_id = row["id"]
        new = _bump(session, study_id, version, reset=False)
        for device, ranks in added.items():
            if ranks:
                keys = _sort_keys(session, study, study_id, device, list(ranks))
                _insert(session, study_id, device, ranks, keys, new)
        stmt = (
            update(FRONT)
            .where(
                FRONT.c.study_id == study_id,
                FRONT.c.device == bindparam("dev"),
                FRONT.c.candidate_id == bindparam("cid"),
            )
            .values(rank=bindparam("r"))
        )
        changes = [
            {"dev": d, "cid": cid, "r": r}
            for d, ranks in reranked.items()
            for cid, r in ranks.items()
        ]
        if changes:
            session.execute(stmt, changes)
        return new

    return work


def read_front_changes(
    storage: Storage, *, study: str, devices: Sequence[str], since: int | None
) -> FrontChanges:
    """What the study's fronts on ``devices`` gained since version ``since``.

    Returns every ranked candidate (``reload``) when ``since`` is ``None`` or the rankings
    were replaced after ``since``; otherwise the candidates ranked after ``since``, each
    with its stored rank and its metrics on that device. A caller at the current version
    costs one read of the study row.

    Raises:
        NotFoundError: No such study.
    """
    from sqlalchemy import select

    for device in devices:
        check_name("device", device, DEVICE_MAX)

    def work(session: Session) -> FrontChanges:
        row = study_row(session, study)
        version, reset = row["front_version"], row["front_reset"]
        reload = since is None or reset > since
        rows: dict[str, tuple[FrontEntry, ...]] = {d: () for d in devices}
        if not reload and version == since:
            return FrontChanges(version=version, reload=False, rows=rows)
        metric_cols = [col.label(f"m_{col.name}") for col in METRICS.c if col.name != "id"]
        for device in devices:
            query = (
                select(FRONT.c.rank, *CANDIDATES.c, *metric_cols)
                .select_from(
                    FRONT.join(CANDIDATES, CANDIDATES.c.id == FRONT.c.candidate_id).join(
                        METRICS,
                        (METRICS.c.candidate_id == FRONT.c.candidate_id)
                        & (METRICS.c.device == device),
                    )
                )
                .where(FRONT.c.study_id == row["id"], FRONT.c.device == device)
                .order_by(FRONT.c.candidate_id)
            )
            if not reload:
                query = query.where(FRONT.c.seq > since)
            entries = []
            for r in session.execute(query).mappings():
                metrics = metrics_record(r, "m_")
                entries.append(
                    FrontEntry(
                        rank=r["rank"], candidate=candidate_record(r, (metrics,)), metrics=metrics
                    )
                )
            rows[device] = tuple(entries)
        return FrontChanges(version=version, reload=reload, rows=rows)

    return storage.run(work, readonly=True)


def stale_fronts(storage: Storage, *, study: str, devices: Sequence[str]) -> tuple[str, ...]:
    """The devices whose stored ranking does not cover exactly the study's complete
    candidates measured there: a complete candidate left unranked (its worker died before
    ranking it, recovery completed it), or a ranked candidate that is no longer complete.

    Two counting queries per device; for the end of a run, not for every trial.

    Raises:
        NotFoundError: No such study.
    """
    from sqlalchemy import and_, exists, func, select

    for device in devices:
        check_name("device", device, DEVICE_MAX)

    def work(session: Session) -> tuple[str, ...]:
        study_id = study_row(session, study)["id"]
        stale = []
        for device in devices:
            ranked = exists().where(
                FRONT.c.study_id == study_id,
                FRONT.c.device == device,
                FRONT.c.candidate_id == CANDIDATES.c.id,
            )
            unranked = session.execute(
                select(func.count())
                .select_from(
                    CANDIDATES.join(
                        METRICS,
                        and_(METRICS.c.candidate_id == CANDIDATES.c.id, METRICS.c.device == device),
                    )
                )
                .where(CANDIDATES.c.study_id == study_id, CANDIDATES.c.state == "complete", ~ranked)
            ).scalar_one()
            gone = session.execute(
                select(func.count())
                .select_from(FRONT.join(CANDIDATES, CANDIDATES.c.id == FRONT.c.candidate_id))
                .where(
                    FRONT.c.study_id == study_id,
                    FRONT.c.device == device,
                    CANDIDATES.c.state != "complete",
                )
            ).scalar_one()
            if unranked or gone:
                stale.append(device)
        return tuple(stale)

    return storage.run(work, readonly=True)


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

    check_choice("sort", sort, FRONT_SORTS)
    check_page(limit, offset, optional_limit=False)
    check_int("max_rank", max_rank, optional=True)
    max_latency = check_float("max_latency_ms", max_latency_ms, minimum=0.0)
    min_acc = check_float("min_accuracy", min_accuracy)
    max_size = check_int("max_size_bytes", max_size_bytes, optional=True)

    f, c, m, st = FRONT, CANDIDATES, METRICS, STUDIES
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
            found = study_row(session, study)
            if (
                device not in found["devices"]
                and not session.execute(
                    select(f.c.rank)
                    .where(f.c.study_id == found["id"], f.c.device == device)
                    .limit(1)
                ).first()
            ):
                raise NotFoundError(
                    f"device {device!r} is not a device of study {study!r} "
                    f"(its devices: {', '.join(found['devices'])})"
                )
            total = 0
            if offset > 0:
                total = session.execute(count_query).scalar_one()
        entries = []
        for r in rows:
            metrics = metrics_record(r, "m_")
            entries.append(
                FrontEntry(
                    rank=r["rank"], candidate=candidate_record(r, (metrics,)), metrics=metrics
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
