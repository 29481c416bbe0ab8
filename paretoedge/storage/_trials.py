"""A trial's writes in as few transactions as possible: one to start it, one to finish it.

Why: each committed transaction costs a disk flush (about 4 ms on a PostgreSQL server with
``fsync`` on), and a trial used to commit its claim's owner, its running row, its result,
its device metrics and its front ranks separately. :func:`start_trial` binds the budget
claim and writes the running row together (so no process can see one without the other),
and :func:`finish_trial` writes the result, its device metrics and, when the caller ranked
it on top of the fronts' current version, its front ranks together. The functions compose
the statements of :func:`~paretoedge.storage.bind_claim`,
:func:`~paretoedge.storage.upsert_candidate`,
:func:`~paretoedge.storage.upsert_device_metrics_many` and
:func:`~paretoedge.storage.extend_fronts`, whose contracts hold unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError
from paretoedge.storage._candidates import candidate_upsert, metrics_upsert
from paretoedge.storage._claims import claim_binding
from paretoedge.storage._fronts import front_extension

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from paretoedge.compression import CompressionSpec
    from paretoedge.storage._engine import Storage
    from paretoedge.storage._owner import Owner
    from paretoedge.storage._records import (
        CandidateRecord,
        CandidateState,
        CandidateValues,
        DeviceMetricsRecord,
    )

__all__ = ["FrontExtension", "FinishedTrial", "finish_trial", "start_trial"]


@dataclass(frozen=True)
class FrontExtension:
    """Ranks to add to the study's fronts if they are still at ``version``
    (the arguments of :func:`~paretoedge.storage.extend_fronts`)."""

    version: int
    added: Mapping[str, Mapping[int, int]]
    reranked: Mapping[str, Mapping[int, int]]


@dataclass(frozen=True)
class FinishedTrial:
    """What :func:`finish_trial` stored.

    Attributes:
        candidate: The candidate, with the device metrics written.
        front_version: The fronts' new version, or ``None`` when no ranks were written
            (none were given, or the fronts moved on since their version).
    """

    candidate: CandidateRecord
    front_version: int | None


def start_trial(
    storage: Storage,
    *,
    study: str,
    trial_number: int,
    spec: CompressionSpec | Mapping[str, Any],
    owner: Owner,
    claim_id: int | None = None,
    is_baseline: bool = False,
    baseline_name: str | None = None,
) -> CandidateRecord:
    """Bind the trial's budget claim to ``owner`` (:func:`bind_claim`) and write its
    ``running`` candidate row (:func:`upsert_candidate`), in one transaction.

    Raises:
        ConfigError, NotFoundError: As those functions.
    """
    bind = claim_binding(study=study, trial_number=trial_number, owner=owner, claim_id=claim_id)
    row = candidate_upsert(
        study=study,
        trial_number=trial_number,
        state="running",
        spec=spec,
        is_baseline=is_baseline,
        baseline_name=baseline_name,
    )

    def work(session: Session) -> CandidateRecord:
        bind(session)
        return row(session)

    return storage.run(work)


def finish_trial(
    storage: Storage,
    *,
    study: str,
    candidate_id: int,
    trial_number: int,
    state: CandidateState,
    spec: CompressionSpec | Mapping[str, Any],
    metrics: Sequence[DeviceMetricsRecord],
    values: CandidateValues,
    fronts: FrontExtension | None = None,
    is_baseline: bool = False,
    baseline_name: str | None = None,
) -> FinishedTrial:
    """Write a trial's result row (:func:`upsert_candidate`), its device metrics
    (:func:`upsert_device_metrics_many`) and, if given and still applicable, its front
    ranks (:func:`extend_fronts`), in one transaction.

    Args:
        candidate_id: The id of the trial's row (from :func:`start_trial`); every metrics
            record must carry it.
        values: The result's measured columns (``None`` keeps the stored value).
        fronts: Ranks computed on the fronts at ``fronts.version``; when the fronts moved
            on meanwhile, the result and metrics are still written and ``front_version``
            is ``None`` (rank again on the news and call :func:`extend_fronts`).

    Raises:
        ConfigError: As those functions, or a metrics record of another candidate, or a
            ``candidate_id`` that is not the row of ``(study, trial_number)``.
        NotFoundError: No such study.
    """
    for i, m in enumerate(metrics):
        if m.candidate_id != candidate_id:
            raise ConfigError(f"metrics[{i}].candidate_id", m.candidate_id, str(candidate_id))
    row = candidate_upsert(
        study=study,
        trial_number=trial_number,
        state=state,
        spec=spec,
        values=values,
        is_baseline=is_baseline,
        baseline_name=baseline_name,
    )
    write_metrics = metrics_upsert(metrics)
    extend = (
        None
        if fronts is None
        else front_extension(
            study=study, version=fronts.version, added=fronts.added, reranked=fronts.reranked
        )
    )

    def work(session: Session) -> FinishedTrial:
        import dataclasses

        rec = row(session)
        if rec.id != candidate_id:
            raise ConfigError("candidate_id", candidate_id, f"{rec.id} (trial {trial_number})")
        write_metrics(session)
        version = extend(session) if extend is not None else None
        return FinishedTrial(dataclasses.replace(rec, metrics=tuple(metrics)), version)

    return storage.run(work)
