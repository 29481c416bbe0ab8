"""Per-device Pareto fronts of a study: ranking its candidates and storing the ranking.

Why a module of its own: a front is a pure function of the study's complete candidates,
its objectives and a device's constraints (:func:`rank_candidates`). It is computed whole
by ``add-device`` for the new device, by a migration for stored studies (:func:`rank_by`)
and by :func:`update_fronts` (the full path, for maintenance and repair), and kept up to
date after each trial by a :class:`FrontKeeper`, which ranks only the new candidate against
an in-memory copy of the stored ranking, so a trial costs the same at 10 or 10,000
candidates. :func:`fill_test_accuracy` measures what every front shows beside the
validation accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretoedge.search._pareto import IncrementalRanking, non_dominated_sort
from paretoedge.search._results import evaluation_of, onnx_artifact

if TYPE_CHECKING:
    from paretoedge.search._config import StudyConfig
    from paretoedge.search._evaluator import Evaluator
    from paretoedge.storage import CandidateRecord, FrontChanges, FrontExtension, Storage

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceFront:
    """One device's ranked front (rank 0 first, then by trial number)."""

    device: str
    ranks: Mapping[int, int]  # trial number -> rank
    front: tuple[int, ...]  # trial numbers of rank 0


def rank_candidates(
    config: StudyConfig, device: str, candidates: Sequence[CandidateRecord]
) -> dict[int, int]:
    """Trial number -> constrained non-dominated rank on ``device``.

    The front's objectives are the device-independent ones plus ``device``'s own; a
    candidate is infeasible on ``device`` when it breaks a constraint that applies there or
    when the hardware model reports a violation (it does not fit the device).
    """
    return rank_by(
        config.front_objectives(device), config.device_constraints(device), device, candidates
    )


def rank_by(
    objs: Sequence[Any], cons: Sequence[Any], device: str, candidates: Sequence[CandidateRecord]
) -> dict[int, int]:
    """:func:`rank_candidates` for explicit front objectives and constraints (a migration
    ranks stored studies whose config this version can no longer parse)."""
    rows, viol, numbers = [], [], []
    for c in candidates:
        if c.metrics_for(device) is None:
            continue
        ev = evaluation_of(c)
        rows.append([o.value(ev) for o in objs])
        m = ev.devices[device]
        viol.append(sum(k.violation(ev) for k in cons) + (0.0 if m.feasible else 1.0))
        numbers.append(c.trial_number)
    ranks = non_dominated_sort(rows, [o.direction for o in objs], viol)
    return dict(zip(numbers, ranks, strict=True))


def front_point(
    objs: Sequence[Any], cons: Sequence[Any], device: str, candidate: CandidateRecord
) -> tuple[list[float], float]:
    """A candidate's objective values and total violation on ``device``, as :func:`rank_by`
    ranks them (the candidate must have metrics on ``device``)."""
    ev = evaluation_of(candidate)
    viol = sum(k.violation(ev) for k in cons) + (0.0 if ev.devices[device].feasible else 1.0)
    return [o.value(ev) for o in objs], viol


@dataclass(frozen=True)
class FrontPlan:
    """A candidate's ranks computed by :meth:`FrontKeeper.prepare`, not yet stored.

    Attributes:
        candidate: The candidate ranked.
        extension: What to write (:class:`paretoedge.storage.FrontExtension`).
        plans: Device -> (point, violation, own rank, changed ranks), applied to the
            keeper's ranking once the write succeeded.
    """

    candidate: CandidateRecord
    extension: FrontExtension
    plans: Mapping[str, tuple[list[float], float, int, dict[int, int]]]


class FrontKeeper:
    """The stored fronts of a study kept up to date one trial at a time.

    Holds each device's ranking in memory (an :class:`IncrementalRanking`, loaded once from
    ``pe_front``) and, for each new complete candidate, ranks it against that copy and
    writes only its own row and the ranks it changed
    (:func:`paretoedge.storage.extend_fronts`). Before ranking, it reads what other workers
    ranked since it last looked (:func:`paretoedge.storage.read_front_changes`: one read of
    the study row when nothing changed); a write that raced with another worker's is
    refused by storage, and the keeper reads the news and ranks again. The stored ranking
    therefore always equals :func:`rank_candidates` over the ranked candidates, as a whole
    recomputation (:func:`update_fronts`) would store it.

    What it does not see: a ranked candidate whose values or state change afterwards (a
    repair by ``resume``); :meth:`reconcile` finds such devices and ranks them whole.

    Args:
        storage: The study's database.
        study: Its name.
        config: The study (its front objectives and device constraints).
        devices: The devices to rank on.
    """

    #: Incremental writes tried before falling back to a whole recomputation (only
    #: reached when other workers keep winning the race).
    RETRIES = 20

    def __init__(
        self, storage: Storage, *, study: str, config: StudyConfig, devices: Sequence[str]
    ) -> None:
        self.storage = storage
        self.study = study
        self.config = config
        self.devices = tuple(devices)
        self._version: int | None = None
        self._rankings: dict[str, IncrementalRanking[int]] = {}
        self._numbers: dict[int, int] = {}  # candidate id -> trial number

    def _spec(self, device: str) -> tuple[Sequence[Any], Sequence[Any]]:
        return self.config.front_objectives(device), self.config.device_constraints(device)

    def _ranking(self, device: str) -> IncrementalRanking[int]:
        if device not in self._rankings:
            objs, _ = self._spec(device)
            self._rankings[device] = IncrementalRanking([o.direction for o in objs])
        return self._rankings[device]

    def sync(self) -> None:
        """Catch up with what was ranked since this keeper last looked."""
        from paretoedge import storage as st

        changes = st.read_front_changes(
            self.storage, study=self.study, devices=self.devices, since=self._version
        )
        self._apply(changes)

    def _apply(self, changes: FrontChanges) -> None:
        if changes.reload:
            self._rankings.clear()
        for device, entries in changes.rows.items():
            ranking = self._ranking(device)
            objs, cons = self._spec(device)
            for e in entries:
                cid = e.candidate.id
                self._numbers[cid] = e.candidate.trial_number
                if cid in ranking:
                    continue
                point, viol = front_point(objs, cons, device, e.candidate)
                if changes.reload:
                    ranking.load(cid, point, viol, e.rank)
                else:
                    ranking.insert(cid, point, viol)
        self._version = changes.version

    def add(self, candidate: CandidateRecord) -> None:
        """Rank a complete candidate (with its device metrics) on every device it was
        measured on, and store its rank and the ranks it changed."""
        from paretoedge import storage as st

        devices = [d for d in self.devices if candidate.metrics_for(d) is not None]
        for _ in range(self.RETRIES):
            self.sync()
            plans = {}
            for d in devices:
                ranking = self._ranking(d)
                if candidate.id in ranking:
                    continue
                objs, cons = self._spec(d)
                point, viol = front_point(objs, cons, d, candidate)
                plans[d] = (point, viol, *ranking.plan(candidate.id, point, viol))
            if not plans:
                return
            assert self._version is not None
            version = st.extend_fronts(
                self.storage,
                study=self.study,
                version=self._version,
                added={d: {candidate.id: own} for d, (_, _, own, _) in plans.items()},
                reranked={d: changed for d, (_, _, _, changed) in plans.items()},
            )
            if version is None:
                continue
            for d, (point, viol, own, changed) in plans.items():
                self._rankings[d].add(candidate.id, point, viol, own, changed)
            self._numbers[candidate.id] = candidate.trial_number
            self._version = version
            return
        _log.warning("study %r: ranking whole fronts after %d lost races", self.study, self.RETRIES)
        update_fronts(self.storage, study=self.study, config=self.config, devices=self.devices)
        self._version = None

    def prepare(self, candidate: CandidateRecord) -> FrontPlan:
        """Rank a complete candidate (with its device metrics, as it is about to be
        stored) against the ranking as this keeper last saw it, without reading the
        database (but the first time), so that its ranks can be written in the same
        transaction as the result (:func:`paretoedge.storage.finish_trial`). Pass the
        outcome to :meth:`settle`."""
        from paretoedge.storage import FrontExtension

        if self._version is None:
            self.sync()
        assert self._version is not None
        plans = {}
        for d in self.devices:
            ranking = self._ranking(d)
            if candidate.metrics_for(d) is None or candidate.id in ranking:
                continue
            objs, cons = self._spec(d)
            point, viol = front_point(objs, cons, d, candidate)
            plans[d] = (point, viol, *ranking.plan(candidate.id, point, viol))
        extension = FrontExtension(
            version=self._version,
            added={d: {candidate.id: own} for d, (_, _, own, _) in plans.items()},
            reranked={d: changed for d, (_, _, _, changed) in plans.items()},
        )
        return FrontPlan(candidate=candidate, extension=extension, plans=plans)

    def settle(self, plan: FrontPlan, version: int | None) -> None:
        """Apply a prepared plan whose write succeeded (``version``: the fronts' new
        version), or, when the fronts had moved on (``None``), rank the candidate again
        on the news (:meth:`add`)."""
        if version is None:
            self.add(plan.candidate)
            return
        for d, (point, viol, own, changed) in plan.plans.items():
            self._rankings[d].add(plan.candidate.id, point, viol, own, changed)
        self._numbers[plan.candidate.id] = plan.candidate.trial_number
        self._version = version

    def fronts(self) -> dict[str, DeviceFront]:
        """Every device's ranking as it is in memory (call :meth:`sync` first to include
        other workers' candidates)."""
        out = {}
        for device in self.devices:
            ranking = self._ranking(device)
            ranks = {self._numbers[k]: r for k, r in ranking.ranks().items()}
            out[device] = DeviceFront(
                device=device,
                ranks=ranks,
                front=tuple(sorted(n for n, r in ranks.items() if r == 0)),
            )
        return out

    def reconcile(self) -> dict[str, DeviceFront]:
        """Make the stored fronts cover exactly the complete candidates measured on each
        device, ranking whole the devices where they do not (a candidate completed by
        recovery, or failed after it was ranked), and return every device's ranking."""
        from paretoedge import storage as st

        stale = st.stale_fronts(self.storage, study=self.study, devices=self.devices)
        if stale:
            update_fronts(self.storage, study=self.study, config=self.config, devices=stale)
            self._version = None
        self.sync()
        return self.fronts()


def update_fronts(
    storage: Storage, *, study: str, config: StudyConfig, devices: Sequence[str]
) -> dict[str, DeviceFront]:
    """Rank the study's complete candidates on each of ``devices`` and store the ranking.

    Several workers rank concurrently, each from its own snapshot, and the last write
    wins: after writing, the complete candidates are listed again and, if they changed
    meanwhile (another worker finished one), ranked again, so the front stored last is
    never older than the candidates any worker saw.
    """
    from paretoedge import storage as st

    def snapshot(cands: Sequence[CandidateRecord]) -> set[tuple[int, tuple[str, ...]]]:
        return {(c.trial_number, tuple(m.device for m in c.metrics)) for c in cands}

    candidates = st.list_candidates(storage, study=study, states=["complete"])
    for _ in range(5):
        out = _store_fronts(storage, study, config, candidates, devices)
        again = st.list_candidates(storage, study=study, states=["complete"])
        if snapshot(again) == snapshot(candidates):
            break
        candidates = again
    return out


def _store_fronts(
    storage: Storage,
    study: str,
    config: StudyConfig,
    candidates: Sequence[CandidateRecord],
    devices: Sequence[str],
) -> dict[str, DeviceFront]:
    from paretoedge import storage as st

    out = {}
    for device in devices:
        ranks = rank_candidates(config, device, candidates)
        by_id = {c.trial_number: c.id for c in candidates}
        st.replace_front(
            storage,
            study=study,
            device=device,
            ranks={by_id[n]: r for n, r in ranks.items()},
        )
        out[device] = DeviceFront(
            device=device,
            ranks=ranks,
            front=tuple(sorted(n for n, r in ranks.items() if r == 0)),
        )
    return out


def fill_test_accuracy(
    storage: Storage, *, study: str, evaluator: Evaluator, fronts: Mapping[str, DeviceFront]
) -> int:
    """Measure test accuracy of front members, and of the baselines (shown beside every
    front for reference), that do not have it yet (ONNX on disk). Returns how many."""
    from paretoedge import storage as st

    baselines = {
        c.trial_number
        for c in st.list_candidates(storage, study=study, states=["complete"])
        if c.is_baseline
    }
    members = sorted({n for f in fronts.values() for n in f.front} | baselines)
    done = 0
    for n in members:
        cand = st.get_candidate(storage, study=study, trial_number=n)
        if cand.test_accuracy is not None:
            continue
        path = onnx_artifact(storage, cand.id)
        if path is None:
            continue
        acc = evaluator.test_accuracy(path)
        if acc is None:
            return done
        st.set_test_accuracy(storage, study=study, trial_number=n, test_accuracy=acc)
        done += 1
    return done
