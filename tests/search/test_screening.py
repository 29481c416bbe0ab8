"""Device metrics before training and the screening sampler, on the synthetic space.

The synthetic evaluator's metrics follow monotone rules of the spec (``_synthetic.py``), so
every point's accuracy and device metrics, and so each device's true front, are known by
brute force; Optuna, storage, fronts and resume are the real ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import (  # noqa: E402
    SyntheticEvaluator,
    synthetic_config,
    synthetic_evaluation,
    twin_trials,
)

from paretoedge.search import (  # noqa: E402  # noqa: E402
    SearchRunner,
    candidate_flat,
    enumerate_space,
    hypervolume,
    pareto_front,
    resume_runner,
)
from paretoedge.search._cheap_metrics import SCREENED_ATTR  # noqa: E402

SPACE = {
    "prune.sparsity": {"low": 0.0, "high": 0.6, "step": 0.2},
    "ffn.keep": [1.0, 0.75, 0.5],
    "quant.bits": [32, 8, 4],
    "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
}
DEVICES = ["dev-a", "dev-b", "dev-c"]


def _runner(tmp_path: Path, config, db: str = "study.db") -> SearchRunner:
    return SearchRunner(
        config,
        storage_url=f"sqlite:///{tmp_path / db}",
        evaluator_factory=SyntheticEvaluator,
        artifacts_dir=tmp_path / "artifacts",
    )


def _evaluated(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line)["flat"] for line in log.read_text().splitlines()]


def test_constraint_violators_are_stored_untrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate breaking ``latency_ms[dev-a] <= 6`` on the only device is costed,
    stored as pruned at fidelity 0 with its device metrics, counted, and never evaluated."""
    from paretoedge import storage as st

    log = tmp_path / "evals.jsonl"
    monkeypatch.setenv("PE_TEST_LOG", str(log))
    cfg = synthetic_config(
        space=SPACE,
        devices=["dev-a"],
        constraints=["latency_ms[dev-a] <= 6"],
        sampler={"name": "random"},
        baselines=[],
        budget={"trials": 12},
    )
    runner = _runner(tmp_path, cfg)
    summary = runner.run()
    for flat in _evaluated(log):
        assert synthetic_evaluation(flat, ["dev-a"]).devices["dev-a"].latency_ms <= 6
    screened = [t for t in runner.study.get_trials() if SCREENED_ATTR in t.user_attrs]
    assert screened and summary.trainings_saved == len(screened)
    # every trial counts against the budget (a repeated configuration reuses its twin)
    assert len(_evaluated(log)) + len(screened) + twin_trials(runner.study) == 12
    for t in screened:
        assert "latency_ms[dev-a] <= 6" in t.user_attrs[SCREENED_ATTR]
        cand = st.get_candidate(runner.storage, study=cfg.name, trial_number=t.number)
        assert cand.state == "pruned" and cand.fidelity == 0 and cand.accuracy is None
        metrics = st.list_candidates(runner.storage, study=cfg.name, states=["pruned"])
        stored = next(c for c in metrics if c.trial_number == t.number).metrics_for("dev-a")
        assert stored is not None and stored.latency_ms > 6


def test_a_candidate_feasible_on_one_device_still_trains(tmp_path: Path) -> None:
    """dev-c (an MCU: flash <= 2 MB) rejects big candidates, dev-a takes them: trained."""
    cfg = synthetic_config(
        space=SPACE, devices=["dev-a", "dev-c"], sampler={"name": "random"}, baselines=[]
    )
    summary = _runner(tmp_path, cfg).run()
    assert summary.trainings_saved == 0 and summary.trials_complete == 8


def _universe(config) -> list:
    """Every point of the space, evaluated."""
    return [
        synthetic_evaluation(candidate_flat(config, p), DEVICES)
        for p in enumerate_space(config.space)
    ]


def _hv(config, device, evaluations, universe) -> float:
    objs = config.front_objectives(device)
    dirs = [o.direction for o in objs]
    ok = [e for e in evaluations if e.devices[device].feasible and e.accuracy >= 0.5]
    pts = [[o.value(e) for o in objs] for e in ok]
    ref = [
        0.0 if o.direction == "maximize" else 1.1 * max(o.value(e) for e in universe) for o in objs
    ]
    front = [pts[i] for i in pareto_front(pts, dirs)] if pts else []
    return hypervolume(front, ref, dirs)


def _shares(runner: SearchRunner) -> dict[str, float]:
    from paretoedge import storage as st

    cfg = runner.config
    universe = _universe(cfg)
    cands = st.list_candidates(runner.storage, study=cfg.name, states=["complete"])
    got = [synthetic_evaluation(c.flat, DEVICES) for c in cands if not c.is_baseline]
    return {d: _hv(cfg, d, got, universe) / _hv(cfg, d, universe, universe) for d in DEVICES}


def test_screening_finds_the_front_with_a_third_of_the_space(tmp_path: Path) -> None:
    """72 points, 24 trials (2 of them baselines): >= 98 % of every device's brute-force
    hypervolume, and less regret summed over the devices than random search."""
    shares = {}
    for sampler in ("screening", "random"):
        cfg = synthetic_config(
            space=SPACE, devices=DEVICES, sampler={"name": sampler}, budget={"trials": 24}
        )
        runner = _runner(tmp_path, cfg, db=f"{sampler}.db")
        runner.run()
        shares[sampler] = _shares(runner)
    assert all(s >= 0.98 for s in shares["screening"].values()), shares
    regret = {k: sum(1 - s for s in v.values()) for k, v in shares.items()}
    assert regret["screening"] < regret["random"], shares


def test_screening_is_deterministic_and_never_trains_an_infeasible_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = synthetic_config(
        space=SPACE,
        devices=["dev-c"],
        sampler={"name": "screening"},
        baselines=[],
        budget={"trials": 10},
    )
    runs = []
    for i in range(2):
        log = tmp_path / f"evals{i}.jsonl"
        monkeypatch.setenv("PE_TEST_LOG", str(log))
        runner = _runner(tmp_path, cfg, db=f"study{i}.db")
        runner.run()
        runs.append([t.params for t in runner.study.get_trials()])
        for flat in _evaluated(log):  # dev-c's flash (2 MB) holds every trained candidate
            assert synthetic_evaluation(flat, ["dev-c"]).devices["dev-c"].feasible
        assert not any(SCREENED_ATTR in t.user_attrs for t in runner.study.get_trials())
    assert runs[0] == runs[1]


def test_screening_survives_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped after 6 trials and resumed to 14: no candidate is evaluated twice."""
    log = tmp_path / "evals.jsonl"
    monkeypatch.setenv("PE_TEST_LOG", str(log))
    cfg = synthetic_config(
        space=SPACE, devices=DEVICES, sampler={"name": "screening"}, budget={"trials": 14}
    )
    runner = _runner(tmp_path, cfg)
    runner.run(n_trials=6)
    assert len(runner.study.get_trials()) == 6
    resumed = resume_runner(
        cfg.name,
        storage_url=runner.storage_url,
        evaluator_factory=SyntheticEvaluator,
        artifacts_dir=tmp_path / "artifacts",
    )
    summary = resumed.run()
    assert summary.trials_complete == 14
    keys = [json.dumps(f, sort_keys=True) for f in _evaluated(log)]
    assert len(keys) == len(set(keys))


def test_two_workers_with_screening_keep_the_budget_and_resume(tmp_path: Path) -> None:
    """Two worker processes with the screening sampler on one SQLite study, both killed
    (SIGKILL) mid-study, then resumed by one worker: exactly the budget of trials ends
    complete or pruned, no candidate breaking dev-c's flash or ``latency_ms[dev-c] <= 3`` is
    ever evaluated, and only the killed trials' candidates are evaluated again."""
    import os
    import signal
    import subprocess
    import time

    import optuna

    budget = 12
    cfg = synthetic_config(
        space=SPACE,
        devices=["dev-c"],
        constraints=["accuracy >= 0.5", "latency_ms[dev-c] <= 3"],
        sampler={"name": "screening"},
        baselines=[],
        budget={"trials": budget},
    )
    cfg_path = tmp_path / "study.json"
    cfg_path.write_text(json.dumps(cfg.to_dict()))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    log = tmp_path / "evals.jsonl"
    env = {**os.environ, "PE_TEST_SLEEP": "0.4", "PE_TEST_LOG": str(log)}
    worker = [sys.executable, str(Path(__file__).parent / "_worker.py"), str(cfg_path), url, "1"]
    procs = [
        subprocess.Popen(worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(_evaluated(log)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_evaluated(log)) >= 4, "the workers did not start evaluating"
        pids = {json.loads(line)["pid"] for line in log.read_text().splitlines()}
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.communicate(timeout=30)
    assert pids == {p.pid for p in procs}, "both workers evaluated"

    out = subprocess.run([*worker, "resume"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    study = optuna.load_study(study_name=cfg.name, storage=url)
    states = [t.state.name for t in study.get_trials()]
    assert states.count("COMPLETE") + states.count("PRUNED") == budget, states
    assert set(states) <= {"COMPLETE", "PRUNED", "FAIL"}, states
    evaluated = _evaluated(log)
    for flat in evaluated:
        m = synthetic_evaluation(flat, ["dev-c"]).devices["dev-c"]
        assert m.feasible and m.latency_ms <= 3, flat
    keys = [json.dumps(f, sort_keys=True) for f in evaluated]
    assert len(keys) - len(set(keys)) <= states.count("FAIL")
