"""The one place that knows Optuna's internals.

Why: the search needs a few things Optuna keeps private (a trial's storage id, the storage
behind a study, recording a heartbeat by hand, the query for stale trials, a distribution's
membership test). Reaching for them from the runner, the backends, recovery and the samplers
spread version-specific code everywhere; an Optuna release that renames one would break the
search in many places at once. Every such use goes through a function here instead, so an
upgrade is checked against this module (and ``tests/search/test_optuna_adapter.py``) only.

Also here: the study's RDB storage with heartbeats (:func:`open_optuna_storage`) and the
silencing of Optuna's experimental warnings and per-trial logs (:func:`quiet_optuna`).
Nothing in this module imports Optuna at import time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, Trial, TrialState

    from paretoedge.storage import Storage

_log = logging.getLogger(__name__)

#: Seconds between heartbeats of a running trial, and after which a silent one is stale.
HEARTBEAT_INTERVAL_S = 5
GRACE_PERIOD_S = 15


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's experimental-feature warnings (heartbeat, metric names, GP) and
    its per-trial INFO logs; paretoedge reports progress itself."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


def open_optuna_storage(
    url: str, *, heartbeat_interval: int = HEARTBEAT_INTERVAL_S, grace_period: int = GRACE_PERIOD_S
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on the same database, with heartbeat and stale-trial retry.

    A trial whose heartbeat is older than ``grace_period`` seconds is failed by the next
    process that looks (a resumed run, another worker) and its parameters are queued again
    (up to 3 times) with :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`.
    """
    import optuna

    from paretoedge.storage import optuna_storage

    with quiet_optuna():
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
        return optuna_storage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=callback,
        )


@contextlib.contextmanager
def setup_lock(storage: Storage) -> Iterator[None]:
    """The cross-process lock under which Optuna's tables and a new study are set up
    (Optuna's own creation is not race-free)."""
    from paretoedge.storage._optuna import _init_lock

    with _init_lock(storage.engine.url, storage.engine):
        yield


def trial_id(trial: Trial | FrozenTrial) -> int:
    """The storage's id of ``trial`` (unique across studies; the trial number is not)."""
    return int(trial._trial_id)


def study_id(study: optuna.Study) -> int:
    """The storage's id of ``study``."""
    return int(study._study_id)


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage ``study`` reads and writes."""
    return study._storage


def frozen_trial(study: optuna.Study, trial: Trial | FrozenTrial | int) -> FrozenTrial:
    """``trial`` (a live trial, a snapshot or a storage id) as stored now, read afresh."""
    tid = trial if isinstance(trial, int) else trial_id(trial)
    return study._storage.get_trial(tid)


def trial_of(study: optuna.Study, tid: int) -> Trial:
    """A live :class:`optuna.Trial` on the stored trial ``tid`` (a worker runs a trial its
    driver asked for)."""
    import optuna

    return optuna.Trial(study, tid)


def set_trial_state(
    study: optuna.Study,
    trial: Trial | FrozenTrial | int,
    state: TrialState,
    values: Sequence[float] | None = None,
) -> bool:
    """Finish a trial in the storage directly (no sampler callback, unlike ``tell``).

    Returns:
        False when another process finished it first.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial was already finished.
    """
    tid = trial if isinstance(trial, int) else trial_id(trial)
    return bool(
        study._storage.set_trial_state_values(
            tid, state, list(values) if values is not None else None
        )
    )


def heartbeat_enabled(study: optuna.Study) -> bool:
    """Whether ``study``'s storage records trial heartbeats."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = study._storage
    return isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)


def record_heartbeat(
    study: optuna.Study, trial: Trial | FrozenTrial | int, *, always: bool = False
) -> None:
    """Record one heartbeat of ``trial`` now (a no-op without heartbeats, unless ``always``).

    A process killed before Optuna's own heartbeat thread first wrote would leave a trial
    that never turns stale (no heartbeat row); this first beat makes it retryable.
    """
    if always or heartbeat_enabled(study):
        tid = trial if isinstance(trial, int) else trial_id(trial)
        study._storage.record_heartbeat(tid)  # type: ignore[attr-defined]


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Ids of the study's running trials whose heartbeat is older than the grace period
    (what :func:`optuna.storages.fail_stale_trials` would fail; Optuna keeps the query
    private to its heartbeat storages)."""
    if not heartbeat_enabled(study):
        return []
    return list(study._storage._get_stale_trial_ids(study._study_id))  # type: ignore[attr-defined]


@contextlib.contextmanager
def heartbeat(study: optuna.Study, tid: int, interval: float) -> Iterator[None]:
    """Record the heartbeat of trial ``tid`` every ``interval`` seconds while the block runs
    (a trial run outside ``study.optimize``, which would otherwise beat for it)."""
    storage = study._storage
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(tid)  # type: ignore[attr-defined]
            except Exception:  # a database hiccup must not kill the trial
                _log.warning("could not record the heartbeat of trial %d", tid, exc_info=True)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"pe-heartbeat-{tid}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def distribution_contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) is in ``distribution``."""
    return bool(distribution._contains(distribution.to_internal_repr(value)))


__all__ = [
    "GRACE_PERIOD_S",
    "HEARTBEAT_INTERVAL_S",
    "distribution_contains",
    "frozen_trial",
    "heartbeat",
    "heartbeat_enabled",
    "open_optuna_storage",
    "quiet_optuna",
    "record_heartbeat",
    "set_trial_state",
    "setup_lock",
    "stale_trial_ids",
    "study_id",
    "study_storage",
    "trial_id",
    "trial_of",
]
