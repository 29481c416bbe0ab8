"""Budget claims and trial owners (``paretoedge.storage._claims`` / ``_owner``), on SQLite
and PostgreSQL: what a claim counts, and how a dead owner is told from a live one."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from paretoedge.storage import create_study, optuna_storage, upsert_candidate
from paretoedge.storage._claims import bind_claim, claim_trial, list_claims, release_claim
from paretoedge.storage._owner import Owner, current_owner


def _dead_owner() -> Owner:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    me = current_owner()
    dead = Owner(host=me.host, pid=proc.pid, started=0)
    proc.wait()
    return dead


def test_owner_liveness() -> None:
    me = current_owner()
    assert me.alive() is True and me.is_local()
    assert _dead_owner().alive() is False
    # a recycled pid: same number, another start time
    assert Owner(host=me.host, pid=os.getppid(), started=1).alive() is False
    assert Owner(host=me.host, pid=os.getppid(), started=0).alive() is True
    # another host (or container, or boot): only its heartbeat can tell
    assert Owner(host="elsewhere|boot|pid:[1]", pid=me.pid, started=me.started).alive() is None


@pytest.fixture
def study(storage: Any, db_url: str) -> Any:
    """A paretoedge study and its Optuna study, both called ``name`` (unique per test)."""
    import optuna

    name = f"claims-{uuid.uuid4().hex[:8]}"
    create_study(
        storage,
        name=name,
        config={},
        devices=["rpi4"],
        objectives=[{"name": "accuracy", "device": None, "direction": "maximize"}],
        seed=0,
    )
    rdb = optuna_storage(db_url)
    yield optuna.create_study(storage=rdb, study_name=name, direction="maximize")
    rdb.engine.dispose()


def _claim(storage: Any, study: Any, owner: Owner | None = None, **kw: Any) -> int | None:
    kw.setdefault("budget", 3)
    kw.setdefault("stale_after_s", 60.0)
    return claim_trial(storage, study=study.study_name, owner=owner or current_owner(), **kw)


def test_claims_stop_at_the_budget(storage: Any, study: Any) -> None:
    ids = [_claim(storage, study) for _ in range(3)]
    assert None not in ids and len(set(ids)) == 3
    assert _claim(storage, study) is None
    release_claim(storage, claim_id=ids[0])  # not used after all: the slot comes back
    again = _claim(storage, study)
    assert again is not None
    assert _claim(storage, study) is None


def test_finished_trials_use_the_budget_and_failed_ones_give_it_back(
    storage: Any, study: Any
) -> None:
    import optuna

    name = study.study_name
    for value in (0.5, None):
        claim = _claim(storage, study)
        trial = study.ask()
        bind_claim(
            storage, study=name, trial_number=trial.number, owner=current_owner(), claim_id=claim
        )
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
    # one COMPLETE trial uses a slot, the FAIL one does not: two of three left
    assert _claim(storage, study) is not None
    assert _claim(storage, study) is not None
    assert _claim(storage, study) is None
    # claims of finished trials were dropped, the two fresh ones remain unbound
    assert [c.trial_number for c in list_claims(storage, study=name)] == [None, None]


def test_dead_and_stale_owners_free_their_slots(storage: Any, study: Any) -> None:
    name = study.study_name
    dead = _dead_owner()
    remote = Owner(host="elsewhere|boot|pid:[1]", pid=1, started=1)
    assert _claim(storage, study, dead) is not None  # unbound, owner dead: not counted
    assert _claim(storage, study, remote) is not None  # unbound, remote, fresh: counted
    # the dead owner's running trial does not count either...
    trial = study.ask()
    bind_claim(storage, study=name, trial_number=trial.number, owner=dead)
    assert _claim(storage, study) is not None
    assert _claim(storage, study) is not None
    assert _claim(storage, study) is None  # remote + 2 live
    # ...unless its worker had stored the whole result (resume completes it from the row)
    upsert_candidate(storage, study=name, trial_number=trial.number, state="complete", spec={})
    assert _claim(storage, study, budget=4) is None
    # a remote owner's unbound claim counts only until it is stale
    assert _claim(storage, study, budget=4, stale_after_s=0.0) is not None


def test_a_trial_finishing_while_a_claim_is_decided_is_counted_once(
    storage: Any, study: Any, backend: str
) -> None:
    """Optuna finishes trials on its own connections, without the study lock. On PostgreSQL
    each statement reads its own snapshot, so a trial that completed after the finished
    trials were counted and before its claim was looked up was counted by neither, and four
    workers finished 10 trials of a budget of 9 (CI). Here the trial completes right after
    the claims are read, the moment that used to fall between the two."""
    if backend == "sqlite":
        pytest.skip("SQLite's claim holds the write lock: no trial can finish meanwhile")
    from sqlalchemy import event

    name = study.study_name
    study.tell(study.ask(), 0.5)  # one finished trial
    claim = _claim(storage, study, budget=2)
    running = study.ask()
    bind_claim(
        storage, study=name, trial_number=running.number, owner=current_owner(), claim_id=claim
    )
    fired: list[str] = []

    def finish_running(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not fired and statement.lstrip().startswith("SELECT") and "pe_trial_claims" in statement:
            fired.append(statement)
            study.tell(running, 0.7)  # committed on Optuna's own connection

    event.listen(storage.engine, "after_cursor_execute", finish_running)
    try:
        assert _claim(storage, study, budget=2) is None  # two finished: the budget is used
    finally:
        event.remove(storage.engine, "after_cursor_execute", finish_running)
    assert fired
