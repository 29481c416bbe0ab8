"""Two real processes writing one study at the same time lose and duplicate nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from _storage_helpers import DEVICES, expected_values

from paretoedge.compression import CompressionSpec
from paretoedge.storage import get_front, list_candidates, list_studies, open_storage

WORKER = Path(__file__).with_name("_storage_worker.py")


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database without any table, so the two workers also race on creating the schema."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))


def _run_two(mode: str, url: str, n: int) -> None:
    start_at = time.time() + 4.0  # both interpreters have imported everything by then
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), mode, url, str(worker), str(start_at), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in (0, 1)
    ]
    spans = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        assert proc.returncode == 0 and out.startswith("ok "), err[-3000:]
        spans.append([float(x) for x in out.split()[1:3]])
    (start0, end0), (start1, end1) = spans
    assert max(start0, start1) < min(end0, end1), f"the workers did not overlap: {spans}"


@pytest.mark.slow
def test_two_processes_write_the_same_study(fresh_url: str) -> None:
    n = 24
    _run_two("rows", fresh_url, n)
    with open_storage(fresh_url) as storage:
        (summary,) = list_studies(storage)
        expected_trials = sorted(
            [*range(n), *(1000 + i for i in range(n // 2)), *(2000 + i for i in range(n // 2))]
        )
        assert summary.trials_complete == len(expected_trials) == summary.trials_total
        cands = list_candidates(storage, study="conc")
        assert [c.trial_number for c in cands] == expected_trials
        for c in cands:
            want = expected_values(c.trial_number)
            assert (c.state, c.accuracy, c.size_bytes) == (
                "complete",
                want["accuracy"],
                want["size_bytes"],
            )
            assert c.spec == CompressionSpec.from_flat(want["spec"])
            assert sorted(m.device for m in c.metrics) == sorted(DEVICES)
            for m in c.metrics:
                assert m.latency_ms == want[m.device]
        # The last replace_front of either worker left a whole, consistent ranking.
        front = get_front(storage, study="conc", device="rpi4", max_rank=None, limit=1000)
        assert front.total > 0
        assert len({e.candidate.id for e in front.entries}) == front.total


@pytest.mark.slow
def test_two_optuna_workers_share_one_database(fresh_url: str) -> None:
    import optuna

    from paretoedge.storage import optuna_storage

    n = 12
    _run_two("optuna", fresh_url, n)
    rdb = optuna_storage(fresh_url)
    try:
        trials = optuna.load_study(study_name="conc", storage=rdb).trials
    finally:
        rdb.engine.dispose()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * (2 * n)
    assert sorted(t.number for t in trials) == list(range(2 * n))
    with open_storage(fresh_url) as storage:
        cands = list_candidates(storage, study="conc", device="rpi4")
        assert [c.trial_number for c in cands] == list(range(2 * n))
        by_number = {t.number: t for t in trials}
        for c in cands:
            t = by_number[c.trial_number]
            assert c.state == "complete" and c.accuracy == t.values[0]
            m = c.metrics_for("rpi4")
            assert m is not None and m.latency_ms == t.values[1]
