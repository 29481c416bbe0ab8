"""The Ray backend: options, authentication, the Tune stopper, and real local clusters.

Tests marked ``ray`` start a real multi-node Ray cluster on this machine
(``ray.cluster_utils.Cluster``: a head and a worker node, one CPU each, token
authentication on) and run the real controller, Optuna RDB storage and paretoedge tables;
only the measurements come from the synthetic evaluator of ``_synthetic.py`` so that a trial
costs milliseconds (or a chosen sleep) instead of a fine-tune.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _synthetic import (  # noqa: E402
    SyntheticEvaluator,
    chosen_completely,
    synthetic_config,
    twin_trials,
)

from paretoedge.errors import ConfigError  # noqa: E402
from paretoedge.search._multifidelity import HalvingConfig, Observation  # noqa: E402
from paretoedge.search._ray_backend import (  # noqa: E402
    DEFAULT_GCS_PORT,
    ParetoHalvingStopper,
    RayBackend,
    RayOptions,
    StudySearcher,
    _check_remote_auth,
    ray_session,
    refresh_auth_config,
)

# -- options and authentication (no cluster) ------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"workers": 0}, "ray.workers"),
        ({"cpus_per_trial": 0}, "ray.cpus_per_trial"),
        ({"gpus_per_trial": -1}, "ray.gpus_per_trial"),
        ({"max_failures": -1}, "ray.max_failures"),
        ({"port": 6379}, "ray.port"),
        ({"port": 70000}, "ray.port"),
        ({"num_cpus": 0}, "ray.num_cpus"),
        ({"address": ""}, "ray.address"),
    ],
    ids=lambda v: str(v),
)
def test_options_reject_bad_values(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        RayOptions(**kwargs)
    assert info.value.field == field


def test_default_port_is_not_redis() -> None:
    assert DEFAULT_GCS_PORT != 6379
    assert RayOptions(port=0).port == 0


def test_options_from_config_section_then_overrides() -> None:
    class _Cfg:
        ray = {"cpus_per_trial": 0.5, "max_concurrent": 3, "max_failures": 1}

    opts = RayOptions.from_config(_Cfg(), workers=None, address="auto")  # type: ignore[arg-type]
    assert (opts.cpus_per_trial, opts.workers, opts.max_failures, opts.address) == (
        0.5,
        3,
        1,
        "auto",
    )
    assert RayOptions.from_config(_Cfg(), workers=5).workers == 5  # type: ignore[arg-type]

    class _Bad:
        ray = {"cpu": 1}

    with pytest.raises(ConfigError, match=r"ray\.cpu"):
        RayOptions.from_config(_Bad())  # type: ignore[arg-type]


def test_remote_cluster_needs_a_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ConfigError, match="RAY_AUTH_TOKEN"):
        _check_remote_auth("ray://head:10001")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x" * 32)
    _check_remote_auth("ray://head:10001")
    assert os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    _check_remote_auth("head:6380")


@pytest.mark.ray
def test_local_head_uses_an_explicit_port_and_a_private_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import ray

    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ray_session(RayOptions(port=port, num_cpus=1), env={"PE_PROBE": "42"}) as info:
        assert info["started"] and info["address"].endswith(f":{port}")
        assert os.environ["RAY_AUTH_MODE"] == "token"
        assert len(os.environ["RAY_AUTH_TOKEN"]) >= 32

        @ray.remote(num_cpus=1)
        def probe() -> str | None:
            return os.environ.get("PE_PROBE")

        assert ray.get(probe.remote()) == "42"  # the job's env reaches the workers
    assert not ray.is_initialized()
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        assert k not in os.environ  # restored
    assert not (tmp_path / ".ray" / "auth_token").exists()  # the token never hit the disk


# -- the Tune stopper, fed by hand -----------------------------------------------------------

DIRS = ("maximize", "minimize")


def _result(fid: int, acc: float, lat: float, **extra: Any) -> dict[str, Any]:
    return {"fidelity": fid, "accuracy": acc, "latency_ms": lat, **extra}


def test_stopper_stops_dominated_results_at_rungs_only() -> None:
    stopper = ParetoHalvingStopper(
        HalvingConfig(min_fidelity=5, eta=3), DIRS, ["accuracy", "latency_ms"]
    )
    assert not stopper("a", _result(5, 0.9, 1.0))
    assert not stopper("b", _result(5, 0.8, 2.0))
    assert not stopper("c", _result(7, 0.1, 9.0))  # 7 is no rung
    assert stopper("c", _result(5, 0.1, 9.0))
    assert stopper.decisions["c"].stop and stopper.decisions["c"].peers == 3
    assert not stopper("d", _result(5, 0.2, 0.5))  # fast: on the rung's front
    assert not stopper("e", {"fidelity": 5})  # no metrics in this result
    assert not stopper.stop_all()


def test_stopper_uses_history_and_violations() -> None:
    history = [Observation(k, 15, (0.9 - k / 100, 1.0)) for k in range(3)]
    stopper = ParetoHalvingStopper(
        HalvingConfig(min_fidelity=5, eta=3),
        DIRS,
        ["accuracy", "latency_ms"],
        history=history,
    )
    assert stopper("x", _result(15, 0.5, 2.0))
    # feasible-looking but infeasible: ranks behind all feasible peers
    assert stopper("y", _result(15, 0.99, 0.1, violation=0.3))
    with pytest.raises(ConfigError, match="metrics"):
        ParetoHalvingStopper(HalvingConfig(min_fidelity=5), DIRS, ["accuracy"])


# -- real local clusters ---------------------------------------------------------------------


#: Seconds each synthetic evaluation sleeps, per test. Ray worker processes inherit the
#: environment of the nodes, so it must be set before the cluster starts.
_TRIAL_SLEEP = {
    "test_worker_node_removed_mid_study": "2.0",
    "test_driver_killed_then_resume": "1.5",
}


@pytest.fixture
def cluster_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Environment every Ray process of the test inherits (set before nodes start)."""
    env = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_urlsafe(32),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).strip(
            os.pathsep
        ),
        "PE_TEST_LOG": str(tmp_path / "evals.log"),
        "RAY_DEDUP_LOGS": "0",
        "PE_TEST_SLEEP": _TRIAL_SLEEP.get(request.node.name, "0"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    refresh_auth_config()
    yield env
    monkeypatch.undo()
    refresh_auth_config()


@pytest.fixture
def ray_cluster(cluster_env: dict[str, str]) -> Iterator[Any]:
    """A head and a worker node, one CPU each, token authentication on."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    cluster.worker = cluster.add_node(num_cpus=1)  # type: ignore[attr-defined]
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


def _runner(config: Any, url: str, tmp_path: Path, *, resume: bool = False) -> Any:
    from paretoedge.search import SearchRunner, resume_runner

    kw = {
        "evaluator_factory": SyntheticEvaluator,
        "artifacts_dir": tmp_path / "artifacts",
        "heartbeat_interval": 1,
        "grace_period": 3,
    }
    if resume:
        return resume_runner(config.name, storage_url=url, **kw)
    return SearchRunner(config, storage_url=url, **kw)


def _candidates(db: Path) -> dict[int, tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute(
            "SELECT trial_number, state, spec, accuracy, size_bytes, created_at "
            "FROM pe_candidates ORDER BY trial_number"
        ).fetchall()
    finally:
        con.close()
    return {r[0]: r[1:] for r in rows}


def _evals(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.ray
@pytest.mark.slow
def test_same_results_as_the_local_backend_on_two_nodes(
    ray_cluster: Any, cluster_env: dict[str, str], tmp_path: Path
) -> None:
    """A random-sampler study gives identical candidates, metrics and fronts on both."""
    config = synthetic_config(sampler={"name": "random"}, budget={"trials": 6})
    local_db, ray_db = tmp_path / "local.db", tmp_path / "ray.db"
    log = Path(cluster_env["PE_TEST_LOG"])
    local = _runner(config, f"sqlite:///{local_db}", tmp_path / "local").run()
    local_evals = len(_evals(log))
    on_ray = _runner(config, f"sqlite:///{ray_db}", tmp_path / "ray")
    summary = on_ray.run(backend=RayBackend(address=ray_cluster.address, workers=2))

    assert summary.trials_complete == local.trials_complete == 6
    assert summary.trials_failed == 0
    strip = {n: r[:4] for n, r in _candidates(local_db).items()}
    assert {n: r[:4] for n, r in _candidates(ray_db).items()} == strip
    for device in config.devices:
        assert summary.fronts[device].front == local.fronts[device].front
        assert summary.fronts[device].ranks == local.fronts[device].ranks
    # Trials ran in Ray worker processes on both nodes, not in this process.
    pids = {e["pid"] for e in _evals(log)[local_evals:]}
    assert os.getpid() not in pids
    assert len(pids) >= 2


@pytest.mark.ray
@pytest.mark.slow
def test_early_stopping_on_ray_matches_local(
    ray_cluster: Any, cluster_env: dict[str, str], tmp_path: Path
) -> None:
    """The halving pruner runs in the Ray workers against the shared storage: with one trial
    at a time it stops exactly the candidates the local backend stops, at the same rungs,
    and stores them as pruned with their partial metrics, outside every front."""
    config = synthetic_config(
        recovery={"steps": 18},
        early_stopping={"min_steps": 2, "eta": 3, "min_peers": 2},
        sampler={"name": "random"},
        budget={"trials": 10},
    )
    local_db, ray_db = tmp_path / "local.db", tmp_path / "ray.db"
    local = _runner(config, f"sqlite:///{local_db}", tmp_path / "local").run()
    on_ray = _runner(config, f"sqlite:///{ray_db}", tmp_path / "ray")
    summary = on_ray.run(backend=RayBackend(address=ray_cluster.address, workers=1))

    def rows(db: Path) -> dict[int, tuple]:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return {
                r[0]: r[1:]
                for r in con.execute(
                    "SELECT trial_number, state, fidelity, accuracy, spec FROM pe_candidates"
                )
            }
        finally:
            con.close()

    got = rows(ray_db)
    assert got == rows(local_db)
    pruned = {n for n, r in got.items() if r[0] == "pruned"}
    assert pruned, "nothing was stopped early"
    assert all(got[n][1] in (2, 6) and got[n][2] is not None for n in pruned)
    for device in config.devices:
        assert summary.fronts[device].front == local.fronts[device].front
        assert not pruned & set(summary.fronts[device].ranks)
    states = {t.number: t.state.name for t in on_ray.study.trials}
    assert {n for n, s in states.items() if s == "PRUNED"} == pruned


@pytest.mark.ray
@pytest.mark.slow
def test_backend_switch_resume(
    ray_cluster: Any, cluster_env: dict[str, str], tmp_path: Path
) -> None:
    """Started locally, continued on Ray, finished locally: nothing redone or lost."""
    config = synthetic_config(budget={"trials": 6})
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    log = Path(cluster_env["PE_TEST_LOG"])

    first = _runner(config, url, tmp_path).run(n_trials=2)
    assert first.trials_complete == 2
    before = _candidates(db)

    on_ray = _runner(config, url, tmp_path, resume=True)
    mid = on_ray.run(n_trials=2, backend=RayBackend(address=ray_cluster.address, workers=2))
    assert mid.trials_complete == 4
    after_ray = _candidates(db)
    for n, row in before.items():
        assert after_ray[n] == row  # same row, same timestamp: not recomputed

    last_runner = _runner(config, url, tmp_path, resume=True)
    last = last_runner.run()
    assert last.trials_complete == 6
    rows = _candidates(db)
    assert sorted(n for n, r in rows.items() if r[0] == "complete") == list(range(6))
    for n, row in after_ray.items():
        assert rows[n] == row
    # every trial evaluated exactly once (a twin reuses a complete trial's result)
    assert len(_evals(log)) == 6 - twin_trials(last_runner.study)


#: A space whose points break dev-c's flash (big float models) or ``latency_ms[dev-c] <= 3``
#: (float models with little sparsity), besides many that fit.
_SCREEN_SPACE = {
    "prune.sparsity": {"low": 0.0, "high": 0.6, "step": 0.2},
    "ffn.keep": [1.0, 0.75, 0.5],
    "quant.bits": [32, 8, 4],
    "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
}


def _fits_dev_c(flat: dict[str, Any]) -> bool:
    from _synthetic import synthetic_evaluation

    m = synthetic_evaluation(flat, ["dev-c"]).devices["dev-c"]
    return m.feasible and m.latency_ms <= 3


@pytest.mark.ray
@pytest.mark.slow
def test_screening_sampler_on_ray_keeps_the_budget_and_resumes(
    ray_cluster: Any, cluster_env: dict[str, str], tmp_path: Path
) -> None:
    """The screening sampler drives Ray's searcher (in the driver, costing candidates with
    the driver's evaluator): two trials at a time on two nodes, stopped after 6 trials and
    resumed on Ray to the budget of 12. Exactly 12 trials end complete or pruned, no
    candidate breaking dev-c's flash or ``latency_ms[dev-c] <= 3`` is ever evaluated, and no
    candidate is evaluated twice."""
    import optuna

    config = synthetic_config(
        space=_SCREEN_SPACE,
        devices=["dev-c"],
        constraints=["accuracy >= 0.5", "latency_ms[dev-c] <= 3"],
        sampler={"name": "screening"},
        baselines=[],
        budget={"trials": 12},
    )
    url = f"sqlite:///{tmp_path / 'study.db'}"
    log = Path(cluster_env["PE_TEST_LOG"])
    first = _runner(config, url, tmp_path)
    first.run(n_trials=6, backend=RayBackend(address=ray_cluster.address, workers=2))
    assert len(first.study.get_trials()) == 6
    resumed = _runner(config, url, tmp_path, resume=True)
    resumed.run(backend=RayBackend(address=ray_cluster.address, workers=2))

    states = [t.state for t in resumed.study.get_trials()]
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert sum(s in done for s in states) == 12 and len(states) == 12, states
    evals = _evals(log)
    assert evals and all(_fits_dev_c(e["flat"]) for e in evals)
    keys = [json.dumps(e["flat"], sort_keys=True) for e in evals]
    assert len(keys) == len(set(keys))
    assert os.getpid() not in {e["pid"] for e in evals}  # trained on the workers


_DRIVER = """
import json, sys
from pathlib import Path
sys.path.insert(0, {here!r})
from _synthetic import SyntheticEvaluator
from paretoedge.search import parse_config
from paretoedge.search import SearchRunner
from paretoedge.search._ray_backend import RayBackend
config = parse_config(json.loads(Path(sys.argv[1]).read_text()), check_names=False)
runner = SearchRunner(config, storage_url=sys.argv[2], evaluator_factory=SyntheticEvaluator,
                      artifacts_dir=Path(sys.argv[1]).parent / "artifacts",
                      heartbeat_interval=1, grace_period=3)
runner.run(backend=RayBackend(address=sys.argv[3], workers=2))
"""


@pytest.mark.ray
@pytest.mark.slow
def test_driver_killed_then_resume(
    ray_cluster: Any, cluster_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL the Ray driver mid-study; `resume` (here on the local backend) finishes the
    budget from the database: completed candidates are kept as they were, the interrupted
    ones are failed as stale and their parameters retried."""
    import subprocess

    import optuna

    config = synthetic_config(sampler={"name": "random"}, budget={"trials": 6})
    cfg_path = tmp_path / "study.json"
    cfg_path.write_text(json.dumps(config.to_dict()))
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER.format(here=str(HERE)))
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(cfg_path), url, ray_cluster.address],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def rows() -> dict[int, tuple]:
        return _candidates(db) if db.exists() else {}

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.OperationalError):
                r = rows()
                if sum(v[0] == "complete" for v in r.values()) >= 2 and any(
                    v[0] == "running" for v in r.values()
                ):
                    break
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = rows()
    complete_before = {n: r for n, r in before.items() if r[0] == "complete"}
    assert len(complete_before) >= 2

    time.sleep(5)  # the orphaned trials' heartbeats go stale (grace period 3 s)
    runner = _runner(config, url, tmp_path, resume=True)
    summary = runner.run()

    after = rows()
    for n, row in complete_before.items():
        assert after[n] == row  # kept, not recomputed
    assert summary.trials_complete == 6
    assert sum(r[0] == "complete" for r in after.values()) == 6
    states = {t.number: t.state for t in runner.study.trials}
    assert all(
        s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
        for s in states.values()
    )
    for t in runner.study.trials:
        if t.state == optuna.trial.TrialState.FAIL:
            retried = [
                u for u in runner.study.trials if u.system_attrs.get("failed_trial") == t.number
            ]
            assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
            assert after[t.number][0] == "failed"
            if not chosen_completely(config.space, t.params):
                # killed while the driver sampled its parameters: the retry keeps the ones
                # chosen and samples the rest (its spec may differ from the failed row's)
                assert retried[0].params.items() >= t.params.items()
                continue
            assert after[retried[0].number][1] == after[t.number][1]  # same spec


@pytest.mark.ray
@pytest.mark.slow
def test_worker_node_removed_mid_study(
    ray_cluster: Any, cluster_env: dict[str, str], tmp_path: Path
) -> None:
    """Killing the worker node mid-trial: the trial is restarted on the head, none lost."""
    import optuna

    config = synthetic_config(sampler={"name": "random"}, budget={"trials": 4})
    db = tmp_path / "study.db"
    runner = _runner(config, f"sqlite:///{db}", tmp_path)
    log = Path(cluster_env["PE_TEST_LOG"])
    removed = threading.Event()
    victim: list[str] = []

    def worker_node_pids() -> set[int]:
        import psutil

        pids = set()
        for _name, proc in ray_cluster.worker.live_processes():
            with contextlib.suppress(psutil.Error):
                pids |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        return pids

    def kill_worker_node() -> None:
        seen: dict[int, float] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = time.monotonic()
            evals = _evals(log)
            for i in range(len(seen), len(evals)):
                seen[i] = now
            on_worker = worker_node_pids()
            for i, e in enumerate(evals):
                # An evaluation on the worker node that started < 1 s ago (each takes 2 s).
                if e["pid"] in on_worker and now - seen[i] < 1.0:
                    victim.append(json.dumps(e["flat"], sort_keys=True))
                    # The whole node dies: its worker processes with its raylet (an orphaned
                    # worker would otherwise finish the trial on its own, which the backend
                    # also handles, but that is not what this test is about).
                    for pid in on_worker:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    ray_cluster.remove_node(ray_cluster.worker, allow_graceful=False)
                    removed.set()
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_worker_node, daemon=True)
    killer.start()
    summary = runner.run(backend=RayBackend(address=ray_cluster.address, workers=2))
    killer.join(timeout=5)

    assert removed.is_set()
    assert summary.trials_complete == 4 and summary.trials_failed == 0
    states = [t.state for t in runner.study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4
    rows = _candidates(db)
    assert sorted(n for n, r in rows.items() if r[0] == "complete") == [0, 1, 2, 3]
    # The interrupted trial was evaluated again (same spec twice), the others once.
    specs = [json.dumps(e["flat"], sort_keys=True) for e in _evals(log)]
    assert len(specs) == 5
    assert specs.count(victim[0]) == 2
    assert all(specs.count(s) == 1 for s in set(specs) - {victim[0]})


def test_searcher_pickles_without_the_database(tmp_path: Path) -> None:
    """Tune writes its searcher to disk: no database URL (password) may be in it."""
    import pickle

    config = synthetic_config()
    url = f"sqlite:///{tmp_path / 'secret-name.db'}"
    runner = _runner(config, url, tmp_path)
    _ = runner.study  # creates the study and enqueues the baselines
    searcher = StudySearcher(runner, runner.optuna_storage())
    blob = pickle.dumps(searcher)
    assert b"secret-name" not in blob
    first = searcher.suggest("t1")
    assert first is not None and first["trial_number"] == 0  # the enqueued teacher baseline


@pytest.mark.ray
def test_stopper_in_a_real_tune_run(
    ray_cluster: Any, cluster_env: dict[str, str], tmp_path: Path
) -> None:
    """Tune stops the dominated curves at a rung and lets the front ones finish."""
    import ray
    from ray import tune

    ray.init(address=ray_cluster.address, logging_level="WARNING")

    def curve(config: dict[str, Any]) -> None:
        for step in (5, 15, 45):
            acc = config["quality"] * (1 - math.exp(-step / 20))
            tune.report({"fidelity": step, "accuracy": acc, "latency_ms": config["latency"]})

    qualities = [0.9, 0.85, 0.3, 0.2, 0.25, 0.95]
    stopper = ParetoHalvingStopper(
        HalvingConfig(min_fidelity=5, eta=3), DIRS, ["accuracy", "latency_ms"]
    )
    tuner = tune.Tuner(
        tune.with_resources(curve, {"cpu": 1}),
        param_space={"quality": tune.grid_search(qualities), "latency": 1.0},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(stop=stopper, verbose=0, storage_path=str(tmp_path / "tune")),
    )
    grid = tuner.fit()
    last = {r.config["quality"]: r.metrics["fidelity"] for r in grid}
    assert last[0.95] == 45 and last[0.9] == 45
    stopped = [q for q, f in last.items() if f < 45]
    assert stopped and all(q < 0.85 for q in stopped)
