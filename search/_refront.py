"""Recompute the fronts a schema upgrade left empty (run inside migration 0004).

Why: revision 0002 introduced the precomputed ``pe_front`` table, created empty. A database
written at revision 0001 therefore showed empty fronts right after the upgrade until a
``resume`` happened to rank the study again. Migration 0004 calls
:func:`recompute_missing_fronts` so that an upgrade leaves every front a user had: each
``(study, device)`` with complete candidates measured on that device but no ranked row gets
the ranking :meth:`SearchRunner.update_fronts` would store.

The ranking uses the stored study config (objectives and constraints, as ``resume``
does). A config this version cannot parse any more is ranked on the objectives stored with
the study and the hardware model's feasibility only, and a warning says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from paretoedge.errors import ParetoEdgeError

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

    from paretoedge.storage import CandidateRecord

_log = logging.getLogger(__name__)

FrontSpec = Callable[[str], tuple[Sequence[Any], Sequence[Any]]]


def front_spec(study: Mapping[str, Any]) -> FrontSpec:
    """device -> (front objectives, constraints) of a stored study row."""
    from paretoedge.search._config import ObjectiveSpec
    from paretoedge.search._maintenance import config_of

    try:
        config = config_of(study["config"])
    except ParetoEdgeError as exc:
        _log.warning(
            "study %r: stored config no longer validates (%s); ranking its fronts on the "
            "stored objectives and device feasibility only",
            study["name"],
            exc,
        )
        objs = [
            ObjectiveSpec(name=o["name"], direction=o["direction"], device=o["device"])
            for o in study["objectives"]
        ]
        return lambda d: (tuple(o for o in objs if o.device in (None, d)), ())
    return lambda d: (config.front_objectives(d), config.device_constraints(d))


def recompute_missing_fronts(connection: Connection) -> int:
    """Rank every ``(study, device)`` that has measured complete candidates but no front
    rows; returns the number of fronts written. Runs on ``connection`` in its transaction."""
    from sqlalchemy import inspect, select

    from paretoedge.search._fronts import rank_by
    from paretoedge.storage._convert import candidate_record, metrics_record
    from paretoedge.storage._models import CandidateRow, DeviceMetricsRow, FrontRow, StudyRow

    studies_t = cast("Table", StudyRow.__table__)
    cands_t = cast("Table", CandidateRow.__table__)
    metrics_t = cast("Table", DeviceMetricsRow.__table__)
    front_t = cast("Table", FrontRow.__table__)

    # This runs inside migration 0004: columns that later revisions add to these tables do
    # not exist yet, so only the columns the database has are read (the others are None,
    # as they are for rows written before those revisions).
    def present(table: Table) -> list[Any]:
        names = {c["name"] for c in inspect(connection).get_columns(table.name)}
        return [c for c in table.c if c.name in names]

    metric_cols = present(metrics_t)
    cand_cols = present(cands_t)
    written = 0
    for study in connection.execute(select(*present(studies_t))).mappings().all():
        ranked = {
            d
            for (d,) in connection.execute(
                select(front_t.c.device).where(front_t.c.study_id == study["id"]).distinct()
            )
        }
        missing = [d for d in study["devices"] if d not in ranked]
        if not missing:
            continue
        rows = (
            connection.execute(
                select(*cand_cols).where(
                    cands_t.c.study_id == study["id"], cands_t.c.state == "complete"
                )
            )
            .mappings()
            .all()
        )
        if not rows:
            continue
        metrics: dict[int, list[Any]] = {}
        for mrow in connection.execute(
            select(*metric_cols).where(metrics_t.c.candidate_id.in_([r["id"] for r in rows]))
        ).mappings():
            full: Any = {**dict.fromkeys(metrics_t.c.keys()), **mrow}
            metrics.setdefault(full["candidate_id"], []).append(metrics_record(full))
        candidates: list[CandidateRecord] = [
            candidate_record(r, tuple(metrics.get(r["id"], ()))) for r in rows
        ]
        by_number = {c.trial_number: c for c in candidates}
        spec = front_spec(dict(study))
        for device in missing:
            objs, cons = spec(device)
            ranks = rank_by(objs, cons, device, candidates)
            if not ranks:
                continue
            payload = []
            for number, rank in ranks.items():
                c = by_number[number]
                m = c.metrics_for(device)
                assert m is not None
                payload.append(
                    {
                        "study_id": study["id"],
                        "device": device,
                        "candidate_id": c.id,
                        "rank": rank,
                        "latency_ms": m.latency_ms,
                        "accuracy": c.accuracy,
                        "size_bytes": c.size_bytes,
                    }
                )
            connection.execute(front_t.insert(), payload)
            written += 1
    return written
