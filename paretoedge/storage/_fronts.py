"""Fronts: a device's whole ranking swapped in one transaction, and filtered, sorted,
paged reads answered from the precomputed ``pe_front`` table.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from paretoedge.storage._records import FRONT_SORTS, FrontEntry, FrontPage, FrontSort

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
    from sqlalchemy import delete, select

    check_name("device", device, DEVICE_MAX)
    rows = []
    for cid, rank in ranks.items():
        check_int(f"ranks[{cid}]", rank)
        rows.append({"candidate_id": check_int("ranks", cid, minimum=1), "rank": rank})

    def work(session: Session) -> int:
        # Locking the study row serialises concurrent replacements of its fronts: without
        # it, two PostgreSQL transactions could both delete and then both insert.
        study_id = study_row(session, study, for_update=True)["id"]
        keys: dict[int, tuple[float, float | None, int | None]] = {}
        ids = [r["candidate_id"] for r in rows]
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
        session.execute(delete(FRONT).where(FRONT.c.study_id == study_id, FRONT.c.device == device))
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
            session.execute(FRONT.insert(), payload[start : start + 5000])
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
