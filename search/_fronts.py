"""Per-device Pareto fronts of a study: ranking its candidates and storing the ranking.

Why a module of its own: a front is a pure function of the study's complete candidates,
its objectives and a device's constraints (:func:`rank_candidates`), and it is recomputed
by a run after every trial, by ``add-device`` for the new device, and by a migration for
stored studies (:func:`rank_by`). Storing it (:func:`update_fronts`) handles workers that
rank concurrently; :func:`fill_test_accuracy` measures what every front shows beside the
validation accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretoedge.search._pareto import non_dominated_sort
from paretoedge.search._results import evaluation_of, onnx_artifact

if TYPE_CHECKING:
    from paretoedge.search._config import StudyConfig
    from paretoedge.search._evaluator import Evaluator
    from paretoedge.storage import CandidateRecord, Storage


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
