"""SIGKILL a study at a random moment (many seeds), ``resume`` at once, check it is whole.

Real subprocesses on a real SQLite file run the real controller (Optuna RDB storage with
heartbeat, claims, the paretoedge tables); only the measurements come from the synthetic
evaluator. The kill lands anywhere from interpreter start-up (before the database file
exists, while the schema is created, while the baselines are enqueued) to inside a trial or
while fronts are written. ``resume`` then runs *immediately* (no waiting for the heartbeat
grace, which is 10 s here) and must leave: every Optuna trial with exactly one candidate row
in the same state, nothing running, the baselines complete, exactly the budget of complete
trials, and stored fronts equal to a fresh ranking of the complete candidates. A quarter of
the seeds also kill the first ``resume``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _synthetic import synthetic_config  # noqa: E402

SEEDS = range(16)
BUDGET = 6
ROW_STATE = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def _start(cfg: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PE_TEST_SLEEP": "0.15"}
    return subprocess.Popen(
        [sys.executable, str(HERE / "_worker.py"), str(cfg), url, "5", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_whole(url: str, config: object) -> None:
    import optuna

    from paretoedge import storage as st
    from paretoedge.search import rank_candidates

    storage = st.open_storage(url)
    try:
        study = optuna.load_study(study_name="synthetic", storage=url)
        trials = study.get_trials(deepcopy=False)
        rows = {c.trial_number: c for c in st.list_candidates(storage, study="synthetic")}
        assert sorted(rows) == sorted(t.number for t in trials), "one row per trial"
        for t in trials:
            assert t.state.name in ROW_STATE, (t.number, t.state)
            assert rows[t.number].state == ROW_STATE[t.state.name], (t.number, t.state)
        complete = [c for c in rows.values() if c.state == "complete"]
        assert len(complete) == BUDGET
        baselines = {c.baseline_name for c in complete if c.is_baseline}
        assert baselines == set(config.baselines)  # type: ignore[attr-defined]
        assert sum(c.is_baseline and c.state == "complete" for c in rows.values()) == len(baselines)
        complete = st.list_candidates(storage, study="synthetic", states=["complete"])
        for device in config.devices:  # type: ignore[attr-defined]
            fresh = rank_candidates(config, device, complete)  # type: ignore[arg-type]
            page = st.get_front(storage, study="synthetic", device=device, max_rank=None)
            assert {e.candidate.trial_number: e.rank for e in page.entries} == fresh
        assert st.get_study(storage, name="synthetic").status == "finished"
    finally:
        storage.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_kill_at_a_random_moment_then_resume_at_once(tmp_path: Path, seed: int) -> None:
    config = synthetic_config(budget={"trials": BUDGET})
    cfg = tmp_path / "study.json"
    cfg.write_text(json.dumps(config.to_dict()))
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    rng = random.Random(seed)
    # Half the seeds kill during start-up (interpreter, schema, study, baselines: the first
    # ~2 s on a loaded 2-core machine), the others anywhere in the run.
    delay = rng.uniform(0.8, 2.5) if seed % 2 else rng.uniform(0.8, 5.0)
    proc = _start(cfg, url)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    if seed % 4 == 3:
        # Kill the resume too (recovering a recovery), then resume again at once.
        first = _start(cfg, url, "resume")
        time.sleep(rng.uniform(0.8, 2.5))
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    resume = _start(cfg, url, "resume")
    out, err = resume.communicate(timeout=120)
    if resume.returncode != 0:
        # Killed before the study was stored: resume must say so in one line, and a new
        # `search` must then finish it.
        assert "Traceback" not in err, err[-3000:]
        assert "not found" in err, err[-3000:]
        again = _start(cfg, url)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err[-3000:]
    _check_whole(url, config)
