"""A budget of N trials means N, whatever the number of workers joining the study.

Several real ``SearchRunner`` processes (synthetic evaluator) start together on one study,
on a SQLite file and on the real PostgreSQL server; the budget is claimed in the database
before each trial (``paretoedge.storage._claims``), so together they finish exactly the
budget: before, four workers on a budget of 12 finished 15-16.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _synthetic import synthetic_config  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture
def study_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
        return
    psycopg = pytest.importorskip("psycopg")
    name = f"pe_budget_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
        )
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not running on 127.0.0.1:5432: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.parametrize(
    "study_url",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_workers_together_finish_exactly_the_budget(tmp_path: Path, study_url: str) -> None:
    import optuna

    from paretoedge import storage as st

    budget, workers = 9, 4
    config = synthetic_config(budget={"trials": budget})
    cfg = tmp_path / "study.json"
    cfg.write_text(json.dumps(config.to_dict()))
    log = tmp_path / "evals.log"
    env = {**os.environ, "PE_TEST_SLEEP": "0.3", "PE_TEST_LOG": str(log)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_worker.py"), str(cfg), study_url, "5"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="synthetic", storage=study_url)
    trials = study.get_trials()
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == budget, states
    assert set(states) == {"COMPLETE"}, states
    with st.open_storage(study_url) as storage:
        rows = st.list_candidates(storage, study="synthetic")
        assert sorted(c.trial_number for c in rows) == sorted(t.number for t in trials)
        assert {c.state for c in rows} == {"complete"}
        assert sum(c.is_baseline for c in rows) == len(config.baselines)
        from paretoedge.search import rank_candidates
        from paretoedge.storage._claims import list_claims

        # the front stored last is the ranking of every complete candidate
        complete = st.list_candidates(storage, study="synthetic", states=["complete"])
        for device in config.devices:
            page = st.get_front(storage, study="synthetic", device=device, max_rank=None)
            stored = {e.candidate.trial_number: e.rank for e in page.entries}
            assert stored == rank_candidates(config, device, complete)

        # every claim was bound to its trial (or given back); none is left unbound
        assert all(c.trial_number is not None for c in list_claims(storage, study="synthetic"))
    # a worker stops once the slots left are held by others' running trials, so it may
    # report fewer complete trials than the budget, never more; more than one did work
    assert all(json.loads(out)["complete"] <= budget for out, _ in outs)
    pids = {json.loads(line)["pid"] for line in log.read_text().splitlines()}
    assert len(pids) >= 2
