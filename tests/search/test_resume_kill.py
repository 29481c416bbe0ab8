"""SIGKILL a study mid-trial (real subprocess, real SQLite file), resume, lose nothing.

The worker process runs the real controller, Optuna RDB storage with heartbeat and the
paretoedge tables; only the measurements come from the synthetic evaluator, slowed down so
the kill lands inside a trial.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _synthetic import SyntheticEvaluator, synthetic_config, twin_trials  # noqa: E402


def _rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(
            "SELECT trial_number, state, accuracy, created_at, spec FROM pe_candidates "
            "ORDER BY trial_number"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _wait(pred, timeout: float, proc: subprocess.Popen) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stderr.read()[-3000:]!r}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_sigkill_mid_trial_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paretoedge import storage as st
    from paretoedge.search import resume_runner

    config = synthetic_config(budget={"trials": 8})
    cfg_path = tmp_path / "study.json"
    cfg_path.write_text(json.dumps(config.to_dict()))
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    log = tmp_path / "evals.log"
    env = {**os.environ, "PE_TEST_SLEEP": "1.0", "PE_TEST_LOG": str(log)}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_worker.py"), str(cfg_path), url, "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # kill once three trials are complete and the fourth is running
        _wait(
            lambda: (
                sum(r[1] == "complete" for r in _rows(db)) >= 3
                and any(r[1] == "running" for r in _rows(db))
            ),
            timeout=120,
            proc=proc,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _rows(db)
    complete_before = {r[0]: r for r in before if r[1] == "complete"}
    killed = [r[0] for r in before if r[1] == "running"]
    assert len(killed) == 1 and len(complete_before) >= 3, before
    evals_before = len(log.read_text().splitlines())
    import optuna

    twins_before = twin_trials(optuna.load_study(study_name="synthetic", storage=url))

    monkeypatch.setenv("PE_TEST_LOG", str(log))
    # Resume at once: the killed trial's owner is a dead local process, so it is failed (and
    # retried) now, not after the heartbeat grace (60 s here).
    runner = resume_runner(
        "synthetic",
        storage_url=url,
        evaluator_factory=SyntheticEvaluator,
        heartbeat_interval=30,
        grace_period=60,
        artifacts_dir=tmp_path / "artifacts",
    )
    summary = runner.run()

    after = _rows(db)
    complete_after = {r[0]: r for r in after if r[1] == "complete"}
    # nothing completed before the kill was lost or recomputed (same row, same timestamp)
    for n, row in complete_before.items():
        assert complete_after[n] == row
    # the killed trial is failed and its parameters were retried under a new number
    state = {r[0]: r[1] for r in after}
    assert state[killed[0]] == "failed"
    retried = [
        t for t in runner.study.get_trials() if t.system_attrs.get("failed_trial") == killed[0]
    ]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    spec_of = {r[0]: r[4] for r in after}
    assert spec_of[retried[0].number] == spec_of[killed[0]]
    # the budget counts completed trials: exactly 8, no duplicates
    assert summary.trials_complete == 8 == len(complete_after)
    evals = log.read_text().splitlines()
    twins_after = twin_trials(runner.study) - twins_before
    assert len(evals) == evals_before + (8 - len(complete_before)) - twins_after
    # fronts are those of the completed trials
    cands = st.list_candidates(runner.storage, study="synthetic", states=["complete"])
    assert len(cands) == 8
    for device in config.devices:
        page = st.get_front(runner.storage, study="synthetic", device=device)
        assert {e.candidate.trial_number for e in page.entries} == set(summary.fronts[device].front)


@pytest.mark.postgres
def test_two_workers_share_one_study_on_postgres(tmp_path: Path) -> None:
    from paretoedge import storage as st
    from paretoedge.search import SearchRunner

    psycopg = pytest.importorskip("psycopg")
    dbname = f"pe_search_{os.getpid()}_{int(time.time())}"
    try:
        admin = psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
        )
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not running on 127.0.0.1:5432: {exc}")
    admin.execute(f'CREATE DATABASE "{dbname}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{dbname}"
    try:
        config = synthetic_config(budget={"trials": 12})
        cfg_path = tmp_path / "study.json"
        cfg_path.write_text(json.dumps(config.to_dict()))
        log = tmp_path / "evals.log"
        env = {**os.environ, "PE_TEST_SLEEP": "0.2", "PE_TEST_LOG": str(log)}
        procs = [
            subprocess.Popen(
                [sys.executable, str(HERE / "_worker.py"), str(cfg_path), url, "2"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-3000:]
        runner = SearchRunner(
            config,
            storage_url=url,
            evaluator_factory=SyntheticEvaluator,
            artifacts_dir=tmp_path / "artifacts",
        )
        trials = runner.study.get_trials()
        cands = st.list_candidates(runner.storage, study="synthetic")
        # one candidate row per Optuna trial, none lost, none duplicated
        assert sorted(c.trial_number for c in cands) == sorted(t.number for t in trials)
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        assert len(complete) == 12  # the budget is claimed in the database
        assert sum(c.is_baseline for c in cands) == 2  # baselines enqueued once
        # both workers did part of the work, and no candidate was evaluated twice
        evals = [json.loads(line) for line in log.read_text().splitlines()]
        assert len({e["pid"] for e in evals}) == 2
        assert len(evals) == len(trials) - twin_trials(runner.study)
        by_id = {c.trial_number: c for c in cands}
        for t in complete:
            assert by_id[t.number].state == "complete"
            assert by_id[t.number].accuracy == pytest.approx(t.values[0])
        for device in config.devices:
            page = st.get_front(runner.storage, study="synthetic", device=device)
            assert page.total >= 1
        runner.storage.engine.dispose()
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,)
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        admin.close()


def test_ctrl_c_requeues_the_interrupted_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paretoedge.search import resume_runner

    config = synthetic_config(budget={"trials": 6})
    cfg_path = tmp_path / "study.json"
    cfg_path.write_text(json.dumps(config.to_dict()))
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    env = {**os.environ, "PE_TEST_SLEEP": "0.5"}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_worker.py"), str(cfg_path), url, "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(
            lambda: (
                sum(r[1] == "complete" for r in _rows(db)) >= 2
                and any(r[1] == "running" for r in _rows(db))
            ),
            timeout=120,
            proc=proc,
        )
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rows = {r[0]: r for r in _rows(db)}
    interrupted = [n for n, r in rows.items() if r[1] == "failed"]
    assert len(interrupted) == 1, rows
    runner = resume_runner(
        "synthetic",
        storage_url=url,
        evaluator_factory=SyntheticEvaluator,
        artifacts_dir=tmp_path / "artifacts",
    )
    summary = runner.run()
    assert summary.trials_complete == 6
    after = _rows(db)
    specs = [r[4] for r in after if r[1] == "complete"]
    assert rows[interrupted[0]][4] in specs  # its parameters were evaluated on resume
