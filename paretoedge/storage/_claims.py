"""Trial budgets counted in the database, and the owner of every running trial.

Why: a budget of N trials must mean N whatever the number of workers (local processes, Ray
workers, machines sharing one PostgreSQL). Optuna's ``MaxTrialsCallback`` counts *after* a
trial, in each process, so workers that start together all see room for one more and the
study overshoots by up to one trial per worker. Here a worker takes a **claim** before it
asks Optuna for a trial, and the claim is decided in one transaction that counts everything
that uses the budget:

- trials that finished (``COMPLETE`` or ``PRUNED`` in Optuna's ``trials`` table, the same
  states as ``MaxTrialsCallback`` counts by default);
- running trials of live owners (or of owners on other hosts, which only their heartbeat can
  declare dead), and running trials of dead owners whose candidate row is already complete
  or pruned (``resume`` finishes those, see ``paretoedge.search._recovery``);
- claims not yet bound to a trial (the worker is between the claim and Optuna's ``ask``).

The transaction is serialised per study: ``BEGIN IMMEDIATE`` on SQLite (every write
transaction of :meth:`Storage.run`), ``SELECT ... FOR UPDATE`` of the study row on
PostgreSQL. Optuna's own writes happen on other connections *after* the claim commits, so
the lock is never held while waiting for Optuna (on SQLite that would deadlock).

A claim also records the owning process (:class:`~paretoedge.storage._owner.Owner`), so
``resume`` can fail a killed local trial at once instead of after the heartbeat grace.
Claims of finished trials are deleted lazily by the next :func:`claim_trial`.

Reading Optuna's tables (``studies``, ``trials``: names and ``state`` stored as the
``TrialState`` name) is the one place where storage knows Optuna's schema; it has been
stable since Optuna 1.0 and is covered by the tests of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from paretoedge.storage._common import check_int, study_row
from paretoedge.storage._convert import utc
from paretoedge.storage._models import CandidateRow, TrialClaimRow, utcnow
from paretoedge.storage._owner import Owner

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.orm import Session

    from paretoedge.storage._engine import Storage

__all__ = [
    "TrialClaim",
    "bind_claim",
    "claim_trial",
    "drop_claims",
    "list_claims",
    "release_claim",
]

_CLAIMS = cast("Table", TrialClaimRow.__table__)
_CANDIDATES = cast("Table", CandidateRow.__table__)
#: Optuna trial states that use a budget slot for good (``MaxTrialsCallback``'s default).
DONE_STATES = ("COMPLETE", "PRUNED")


@dataclass(frozen=True)
class TrialClaim:
    """A budget slot: its trial (``None`` until bound) and the process that owns it."""

    id: int
    trial_number: int | None
    owner: Owner
    created_at: datetime


def _claim(row: object) -> TrialClaim:
    r = cast("dict[str, object]", row)
    return TrialClaim(
        id=cast(int, r["id"]),
        trial_number=cast("int | None", r["trial_number"]),
        owner=Owner(
            host=cast(str, r["owner_host"]),
            pid=cast(int, r["owner_pid"]),
            started=cast(int, r["owner_started"]),
        ),
        created_at=utc(cast(datetime, r["created_at"])),
    )


_TRIALS_OF = "FROM trials t JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name"


def _done_and_states(
    session: Session, optuna_study_name: str, numbers: Iterable[int]
) -> tuple[int, dict[int, str]]:
    """How many trials of one Optuna study are finished for the budget, and the states of
    trials ``numbers``, in **one** statement.

    Why one: on PostgreSQL (READ COMMITTED) each statement reads its own snapshot, and
    Optuna finishes trials on other connections without the study lock. Counted in one
    statement and looked up in a later one, a trial that completed in between was counted
    by neither (not done yet for the count, done already for its claim), and four workers
    finished 10 trials of a budget of 9.
    """
    from sqlalchemy import bindparam, text

    wanted = sorted(set(numbers)) or [-1]  # an empty IN () is not SQL
    # Optuna stores TrialState by name (a VARCHAR on SQLite, an enum type on PostgreSQL).
    stmt = text(
        f"SELECT NULL AS number, NULL AS state, count(*) AS done {_TRIALS_OF} "
        "AND t.state IN ('COMPLETE', 'PRUNED') "
        f"UNION ALL SELECT t.number, t.state, NULL {_TRIALS_OF} AND t.number IN :numbers"
    ).bindparams(bindparam("numbers", expanding=True))
    done = 0
    states: dict[int, str] = {}
    for number, state, count in session.execute(
        stmt, {"name": optuna_study_name, "numbers": wanted}
    ):
        if number is None:
            done = int(count)
        else:
            states[int(number)] = str(getattr(state, "name", state))
    return done, states


def _owner_values(owner: Owner) -> dict[str, object]:
    return {"owner_host": owner.host, "owner_pid": owner.pid, "owner_started": owner.started}


def claim_trial(
    storage: Storage, *, study: str, budget: int | None, owner: Owner, stale_after_s: float
) -> int | None:
    """Take one slot of ``study``'s trial budget for ``owner``, or ``None`` if none is left.

    Args:
        budget: Trials the study may finish (``None``: unlimited; the claim still records
            the owner).
        owner: The process that will ask Optuna for the trial.
        stale_after_s: An unbound claim of an owner on another host counts for this long
            (its worker has not bound it to a trial: assume it died after that).

    Returns:
        The claim's id; pass it to :func:`bind_claim` once the trial exists, or to
        :func:`release_claim` if no trial is started after all.
    """
    from sqlalchemy import delete, select

    if budget is not None:
        check_int("budget", budget)

    def work(session: Session) -> int | None:
        row = study_row(session, study, for_update=True)
        study_id = row["id"]
        optuna_name = row["optuna_study_name"]
        claims = [
            _claim(r._mapping)
            for r in session.execute(select(_CLAIMS).where(_CLAIMS.c.study_id == study_id))
        ]
        bound = [c.trial_number for c in claims if c.trial_number is not None]
        used, states = _done_and_states(session, optuna_name, bound)
        rows = {
            n: s
            for n, s in session.execute(
                select(_CANDIDATES.c.trial_number, _CANDIDATES.c.state).where(
                    _CANDIDATES.c.study_id == study_id, _CANDIDATES.c.trial_number.in_(bound)
                )
            )
        }
        stale: list[int] = []
        now = utcnow()
        for claim in claims:
            alive = claim.owner.alive()
            if claim.trial_number is None:
                fresh = now - claim.created_at < timedelta(seconds=stale_after_s)
                if alive or (alive is None and fresh):
                    used += 1
                else:
                    stale.append(claim.id)
                continue
            state = states.get(claim.trial_number)
            if state in (None, "RUNNING"):
                if alive is not False or rows.get(claim.trial_number) in ("complete", "pruned"):
                    used += 1
            else:
                stale.append(claim.id)  # finished: counted by its state above
        if stale:
            session.execute(delete(_CLAIMS).where(_CLAIMS.c.id.in_(stale)))
        if budget is not None and used >= budget:
            return None
        result = session.execute(
            _CLAIMS.insert()
            .values(study_id=study_id, trial_number=None, created_at=now, **_owner_values(owner))
            .returning(_CLAIMS.c.id)
        )
        return int(result.scalar_one())

    return storage.run(work)


def bind_claim(
    storage: Storage, *, study: str, trial_number: int, owner: Owner, claim_id: int | None = None
) -> None:
    """Record that ``owner`` runs trial ``trial_number`` (idempotent).

    With ``claim_id`` the claim taken for this trial is bound to it; without (a Ray worker
    taking over a trial its driver claimed, a caller that runs ``objective`` itself), the
    trial's claim is created or handed to ``owner``.
    """
    storage.run(
        claim_binding(study=study, trial_number=trial_number, owner=owner, claim_id=claim_id)
    )


def claim_binding(
    *, study: str, trial_number: int, owner: Owner, claim_id: int | None = None
) -> Callable[[Session], None]:
    """:func:`bind_claim`'s arguments checked now, its statements as a function of a
    session."""
    from sqlalchemy import delete, update

    check_int("trial_number", trial_number)

    def work(session: Session) -> None:
        study_id = study_row(session, study)["id"]
        values = _owner_values(owner)
        if claim_id is not None:
            session.execute(
                delete(_CLAIMS).where(
                    _CLAIMS.c.study_id == study_id,
                    _CLAIMS.c.trial_number == trial_number,
                    _CLAIMS.c.id != claim_id,
                )
            )
            bound = session.execute(
                update(_CLAIMS)
                .where(_CLAIMS.c.id == claim_id)
                .values(trial_number=trial_number, **values)
                .returning(_CLAIMS.c.id)
            ).first()
            if bound is not None:
                return
        from paretoedge.storage._common import insert_for

        stmt = insert_for(session, _CLAIMS).values(
            study_id=study_id, trial_number=trial_number, created_at=utcnow(), **values
        )
        session.execute(
            stmt.on_conflict_do_update(index_elements=["study_id", "trial_number"], set_=values)
        )

    return work


def release_claim(storage: Storage, *, claim_id: int) -> None:
    """Give back a claim that was not used for a trial (nothing happens if it is gone)."""
    from sqlalchemy import delete

    storage.run(lambda s: s.execute(delete(_CLAIMS).where(_CLAIMS.c.id == claim_id)))


def drop_claims(storage: Storage, *, study: str, trial_numbers: Iterable[int]) -> None:
    """Delete the claims of trials that are finished (their owner no longer matters)."""
    from sqlalchemy import delete

    numbers = sorted(set(trial_numbers))
    if not numbers:
        return

    def work(session: Session) -> None:
        study_id = study_row(session, study)["id"]
        session.execute(
            delete(_CLAIMS).where(
                _CLAIMS.c.study_id == study_id, _CLAIMS.c.trial_number.in_(numbers)
            )
        )

    storage.run(work)


def list_claims(storage: Storage, *, study: str) -> tuple[TrialClaim, ...]:
    """Every claim of ``study`` (bound or not), oldest first."""
    from sqlalchemy import select

    def work(session: Session) -> tuple[TrialClaim, ...]:
        study_id = study_row(session, study)["id"]
        rows = session.execute(
            select(_CLAIMS).where(_CLAIMS.c.study_id == study_id).order_by(_CLAIMS.c.id)
        )
        return tuple(_claim(r._mapping) for r in rows)

    return storage.run(work, readonly=True)
