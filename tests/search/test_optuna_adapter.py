"""The Optuna adapter against the installed Optuna: every private thing the search needs.

If an Optuna release renames one of its internals, these fail here (and only the adapter
needs changing), instead of a search failing at some trial.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest

from paretoedge.search import _optuna_adapter as oa


def _study(tmp_path: Path, *, heartbeat: bool) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    storage = (
        oa.open_optuna_storage(url, heartbeat_interval=1, grace_period=2)
        if heartbeat
        else optuna.storages.RDBStorage(url)
    )
    with oa.quiet_optuna():
        return optuna.create_study(storage=storage, study_name="s", directions=["minimize"])


def test_ids_and_fresh_reads(tmp_path: Path) -> None:
    study = _study(tmp_path, heartbeat=False)
    trial = study.ask()
    tid = oa.trial_id(trial)
    assert isinstance(tid, int) and isinstance(oa.study_id(study), int)
    frozen = oa.frozen_trial(study, trial)
    assert frozen.number == trial.number and oa.trial_id(frozen) == tid
    assert oa.frozen_trial(study, tid).number == trial.number
    assert oa.study_storage(study) is not None
    live = oa.trial_of(study, tid)
    live.set_user_attr("k", 1)
    assert oa.frozen_trial(study, trial).user_attrs == {"k": 1}


def test_set_trial_state_finishes_once(tmp_path: Path) -> None:
    study = _study(tmp_path, heartbeat=False)
    trial = study.ask()
    assert oa.set_trial_state(study, trial, optuna.trial.TrialState.COMPLETE, [1.5])
    frozen = oa.frozen_trial(study, trial)
    assert frozen.state == optuna.trial.TrialState.COMPLETE and frozen.values == [1.5]
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        oa.set_trial_state(study, trial, optuna.trial.TrialState.FAIL)


def test_heartbeats_and_stale_trials(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    plain = _study(tmp_path / "plain", heartbeat=False)
    assert not oa.heartbeat_enabled(plain) and oa.stale_trial_ids(plain) == []
    oa.record_heartbeat(plain, plain.ask())  # a no-op without heartbeats

    study = _study(tmp_path, heartbeat=True)
    assert oa.heartbeat_enabled(study)
    trial = study.ask()
    tid = oa.trial_id(trial)
    oa.record_heartbeat(study, trial)
    assert oa.stale_trial_ids(study) == []
    # stale once the grace period (2 s) has passed since the beat; poll rather than sleep a
    # fixed 2.5 s (the stored beat's clock and a loaded machine leave a fixed margin flaky)
    deadline = time.monotonic() + 15
    while oa.stale_trial_ids(study) != [tid] and time.monotonic() < deadline:
        time.sleep(0.25)
    assert oa.stale_trial_ids(study) == [tid]
    with oa.heartbeat(study, tid, 0.2):
        time.sleep(0.3)
    assert oa.stale_trial_ids(study) == []


def test_distribution_contains() -> None:
    dist = optuna.distributions.CategoricalDistribution([1.0, 0.5])
    assert oa.distribution_contains(dist, 0.5)
    grid = optuna.distributions.FloatDistribution(0.0, 0.6, step=0.1)
    assert oa.distribution_contains(grid, 0.3) and not oa.distribution_contains(grid, 0.7)
