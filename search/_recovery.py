"""Bring a study back to a consistent state after processes were killed at any moment.

Why: Optuna fails a dead trial only once its heartbeat is older than the grace period, and
only when some process looks. ``paretoedge resume`` run right after a crash used to finish
the budget before that happened, leaving the killed trial ``RUNNING`` for good, candidate rows
``running`` under ``FAIL`` trials, and (killed during set-up) baselines never enqueued.

:func:`recover` is called when a run starts and again before its fronts are stored. It
only touches trials whose owner is known to be dead, so it is safe while other workers run:

- a ``RUNNING`` trial whose owner (:class:`~paretoedge.storage._owner.Owner`, recorded in
  its claim) is a dead process on this host is finished *now*: as ``COMPLETE`` (or
  ``PRUNED``) from its stored candidate row when the worker had written the whole result
  before it died (nothing is recomputed), otherwise as ``FAIL`` with its parameters queued
  again (Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`, so the retry
  records ``failed_trial`` as a stale trial's retry does);
- a ``RUNNING`` trial without a bound claim was killed between Optuna's ``ask`` and the
  objective's first write when no live process holds an unbound claim of the study (every
  trial is asked under a claim, see :mod:`paretoedge.storage._claims`);
- owners on other hosts are left to Optuna's heartbeat grace: once their heartbeat is stale
  the trial is finished the same way (from its row when the result was stored);
- afterwards every ``FAIL`` trial gets a ``failed`` candidate row
  (:meth:`SearchRunner.sync_failed`), and the claims of finished trials are dropped.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from paretoedge.search._runner import SearchRunner
    from paretoedge.storage import CandidateRecord

_log = logging.getLogger(__name__)


def dead_trials(runner: SearchRunner, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The ``RUNNING`` trials of ``study`` whose owner is known to be dead (see module)."""
    import optuna

    from paretoedge.storage._claims import list_claims
    from paretoedge.storage._models import utcnow

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        return []
    claims = list_claims(runner.storage, study=runner.name)
    bound = {c.trial_number: c for c in claims if c.trial_number is not None}
    now = utcnow()
    fresh = timedelta(seconds=runner.grace_period)
    unbound_live = any(
        (alive := c.owner.alive()) or (alive is None and now - c.created_at < fresh)
        for c in claims
        if c.trial_number is None
    )
    out = []
    for t in running:
        claim = bound.get(t.number)
        dead = claim.owner.alive() is False if claim is not None else not unbound_live
        if dead:
            out.append(t)
    return out


def _finish_dead(
    runner: SearchRunner,
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    row: CandidateRecord | None,
) -> str:
    import optuna

    from paretoedge.search._optuna_adapter import frozen_trial, set_trial_state
    from paretoedge.search._results import evaluation_of

    TS = optuna.trial.TrialState
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        if row is not None and row.state == "pruned":
            set_trial_state(study, trial, TS.PRUNED)
            return "pruned"
        if (
            row is not None
            and row.state == "complete"
            and all(row.metrics_for(d) is not None for d in runner.devices)
        ):
            try:
                values = runner.objective_values(evaluation_of(row))
            except Exception:  # a row that cannot give values is retried instead
                values = None
            if values is not None:
                set_trial_state(study, trial, TS.COMPLETE, values)
                return "complete"
        if set_trial_state(study, trial, TS.FAIL):
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
            retry(study, frozen_trial(study, trial))
        return "failed"
    return "gone"


def recover(runner: SearchRunner, study: optuna.Study) -> dict[int, str]:
    """Finish the trials of dead owners and make candidate rows match trial states.

    Returns:
        Trial number -> what became of it (``complete``, ``pruned``, ``failed``) for each
        trial of a dead owner that this call finished.
    """
    import optuna

    from paretoedge import storage as st
    from paretoedge.search._optuna_adapter import quiet_optuna, stale_trial_ids, trial_id
    from paretoedge.storage._claims import drop_claims

    done: dict[int, str] = {}
    with quiet_optuna():
        dead = dead_trials(runner, study)
        # Trials whose heartbeat is stale (owners on other hosts, or a Ray worker gone with
        # its driver) are finished the same way, before Optuna's own stale check would fail
        # one whose result its worker had already stored.
        stale_ids = set(stale_trial_ids(study))
        known = {t.number for t in dead}
        dead += [
            t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if trial_id(t) in stale_ids and t.number not in known
        ]
        if dead:
            rows = {
                c.trial_number: c
                for c in st.list_candidates(runner.storage, study=runner.name)
                if c.trial_number in {t.number for t in dead}
            }
            for t in dead:
                done[t.number] = _finish_dead(runner, study, t, rows.get(t.number))
                _log.info("trial %d of a dead process: %s", t.number, done[t.number])
        optuna.storages.fail_stale_trials(study)
    runner.sync_failed(study)
    finished = study.get_trials(
        deepcopy=False,
        states=(
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL,
        ),
    )
    drop_claims(runner.storage, study=runner.name, trial_numbers=[t.number for t in finished])
    return done
