"""Fronts updated one trial at a time equal a whole recomputation, and a trial reads no
list of every candidate (the twin is an indexed lookup, the fronts an in-memory ranking)."""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import SyntheticEvaluator, synthetic_config, synthetic_evaluation  # noqa: E402

from paretoedge.compression import CompressionSpec  # noqa: E402
from paretoedge.search import SearchRunner  # noqa: E402
from paretoedge.search._pareto import IncrementalRanking, non_dominated_sort  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _random_set(seed: int) -> tuple[list[str], list[list[float]], list[float]]:
    """Points on a coarse grid (many ties and duplicates) or fine one, some infeasible
    (a few distinct violations, so infeasible points tie too)."""
    rnd = random.Random(seed)
    m = rnd.choice([1, 2, 3, 4])
    directions = [rnd.choice(["minimize", "maximize"]) for _ in range(m)]
    n = rnd.randint(1, 80)
    grid = rnd.choice([2, 4, 1000])
    points = [[float(rnd.randint(0, grid)) for _ in range(m)] for _ in range(n)]
    share = rnd.choice([0.0, 0.2, 0.6])
    violations = [
        rnd.choice([0.25, 0.5, 1.0, 2.0]) if rnd.random() < share else rnd.choice([0.0, -1.0])
        for _ in range(n)
    ]
    return directions, points, violations


@pytest.mark.parametrize("seed", range(60))
def test_incremental_ranking_equals_a_full_sort_after_every_point(seed: int) -> None:
    directions, points, violations = _random_set(seed)
    ranking: IncrementalRanking[int] = IncrementalRanking(directions)
    for i, (p, v) in enumerate(zip(points, violations, strict=True)):
        before = ranking.ranks()
        own, changed = ranking.plan(i, p, v)
        assert ranking.ranks() == before and i not in ranking  # plan changes nothing
        ranking.add(i, p, v, own, changed)
        full = non_dominated_sort(points[: i + 1], directions, violations[: i + 1])
        assert ranking.ranks() == dict(enumerate(full)), i
        # only the ranks that changed are reported
        assert changed == {k: r for k, r in ranking.ranks().items() if k != i and before[k] != r}
    assert sorted(ranking.front()) == [i for i, r in enumerate(full) if r == 0]


@pytest.mark.parametrize("seed", range(10))
def test_loaded_ranks_continue_like_a_full_sort(seed: int) -> None:
    """A ranking loaded from stored ranks (what a worker reads at start) goes on as if it
    had ranked every point itself."""
    directions, points, violations = _random_set(seed)
    half = len(points) // 2
    stored = non_dominated_sort(points[:half], directions, violations[:half])
    ranking: IncrementalRanking[int] = IncrementalRanking(directions)
    for i in range(half):
        ranking.load(i, points[i], violations[i], stored[i])
    for i in range(half, len(points)):
        ranking.insert(i, points[i], violations[i])
    assert ranking.ranks() == dict(enumerate(non_dominated_sort(points, directions, violations)))


def test_equal_points_are_ranked_once_and_move_together() -> None:
    """Twin trials bring points equal to ranked ones: they are not compared again (the
    per-addition pass covers distinct points only) and their ranks follow their equal's."""
    ranking: IncrementalRanking[str] = IncrementalRanking(["minimize", "minimize"])
    ranking.insert("a", [2.0, 2.0])
    ranking.insert("bad", [3.0, 3.0], violation=1.0)
    for i in range(5):
        assert ranking.insert(f"a{i}", [2.0, 2.0]) == 0
        ranking.insert(f"bad{i}", [3.0, 3.0], violation=1.0)
    assert len(ranking) == 12 and len(ranking._keys) == 2  # two distinct points held
    own, changed = ranking.plan("b", [1.0, 1.0])
    twins = ["a", *(f"a{i}" for i in range(5))]
    infeasible = ["bad", *(f"bad{i}" for i in range(5))]
    assert own == 0 and changed == {k: 1 for k in twins} | {k: 2 for k in infeasible}
    ranking.add("b", [1.0, 1.0], 0.0, own, changed)
    assert ranking.ranks() == {"b": 0} | {k: 1 for k in twins} | {k: 2 for k in infeasible}
    assert ranking.front() == ["b"] and ranking.rank("a3") == 1 and "a3" in ranking


def test_incremental_ranking_refuses_bad_points() -> None:
    from paretoedge.errors import ConfigError

    ranking: IncrementalRanking[str] = IncrementalRanking(["minimize", "maximize"])
    ranking.insert("a", [1.0, 2.0])
    with pytest.raises(ConfigError, match="key"):
        ranking.insert("a", [0.0, 3.0])
    with pytest.raises(ConfigError, match="NaN"):
        ranking.plan("b", [float("nan"), 1.0])
    with pytest.raises(ConfigError, match="2 values"):
        ranking.plan("b", [1.0])
    with pytest.raises(ConfigError, match="directions"):
        IncrementalRanking(["down"])  # type: ignore[list-item]


@pytest.fixture
def study_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
        return
    import psycopg

    name = f"pe_fronts_{uuid.uuid4().hex[:12]}"
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


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _stored_ranks(storage: Any, study: str, device: str) -> dict[int, int]:
    from paretoedge import storage as st

    out: dict[int, int] = {}
    offset = 0
    while True:
        page = st.get_front(
            storage, study=study, device=device, max_rank=None, limit=500, offset=offset
        )
        out.update({e.candidate.trial_number: e.rank for e in page.entries})
        offset += len(page.entries)
        if offset >= page.total:
            return out


def _recomputed(storage: Any, config: Any, study: str, device: str) -> dict[int, int]:
    from paretoedge import storage as st
    from paretoedge.search._fronts import rank_candidates

    complete = st.list_candidates(storage, study=study, states=["complete"])
    return rank_candidates(config, device, complete)


def _objectives(config: Any) -> list[dict[str, Any]]:
    return [
        {"name": o.name, "device": o.device, "direction": o.direction} for o in config.objectives
    ]


def _config(**over: Any) -> Any:
    space = {
        "prune.sparsity": {"low": 0.0, "high": 0.8, "step": 0.1},
        "ffn.keep": [1.0, 0.75, 0.5],
        "quant.bits": [32, 8, 4],
        "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
    }
    return synthetic_config(
        space=space,
        devices=["dev-a", "dev-b", "dev-c"],
        constraints=["accuracy >= 0.6"],
        sampler={"name": "random"},
        **over,
    )


@pytest.mark.parametrize("study_url", BACKENDS, indirect=True)
def test_stored_fronts_after_a_study_equal_a_recomputation(
    tmp_path: Path, study_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study of 40 trials (random sampler, a constraint, an infeasible device, twins):
    the ranks stored trial by trial equal a whole recomputation on every device, and no
    trial listed every candidate of the study."""
    from paretoedge import storage as st

    config = _config(budget={"trials": 40})
    runner = SearchRunner(
        config,
        storage_url=study_url,
        evaluator_factory=SyntheticEvaluator,
        artifacts_dir=tmp_path / "art",
    )
    listed_in_trial: list[str] = []
    in_trial = [False]
    real_list = st.list_candidates

    def watched_list(*args: Any, **kwargs: Any) -> Any:
        if in_trial[0]:
            listed_in_trial.append(str(kwargs.get("states")))
        return real_list(*args, **kwargs)

    monkeypatch.setattr(st, "list_candidates", watched_list)
    objective = runner.objective

    def watched_objective(trial: Any) -> Any:
        in_trial[0] = True
        try:
            return objective(trial)
        finally:
            in_trial[0] = False

    monkeypatch.setattr(runner, "objective", watched_objective)
    summary = runner.run()
    assert listed_in_trial == []
    assert summary.trials_complete == 40
    for device in config.devices:
        stored = _stored_ranks(runner.storage, config.name, device)
        assert stored == _recomputed(runner.storage, config, config.name, device), device
        assert dict(summary.fronts[device].ranks) == stored
    ranks = _stored_ranks(runner.storage, config.name, "dev-c")
    assert max(ranks.values()) > 1  # deep ranks and the infeasible tail were exercised
    runner.storage.engine.dispose()


@pytest.mark.parametrize("study_url", BACKENDS, indirect=True)
def test_keepers_of_two_workers_stay_equal_to_a_recomputation(study_url: str) -> None:
    """Two workers' keepers on one study, adding candidates in turn, with one of them
    losing the race for the write: the refused write is ranked again on the news."""
    from paretoedge import storage as st
    from paretoedge.search import CandidateResult
    from paretoedge.search._fronts import FrontKeeper
    from paretoedge.search._results import store_result
    from paretoedge.search._space import enumerate_space

    config = _config()
    devices = config.devices
    storage = st.open_storage(study_url)
    st.create_study(
        storage,
        name="w",
        config=config.to_dict(),
        devices=list(devices),
        objectives=[
            {"name": o.name, "device": o.device, "direction": o.direction}
            for o in config.objectives
        ],
        seed=0,
    )
    keepers = [FrontKeeper(storage, study="w", config=config, devices=devices) for _ in range(2)]
    points = list(enumerate_space(config.space))
    rnd = random.Random(5)
    rnd.shuffle(points)

    def stored(n: int, flat: Any) -> Any:
        spec = CompressionSpec.from_flat(flat)
        result = CandidateResult(
            spec=spec,
            evaluation=synthetic_evaluation(spec.to_flat(), devices),
            onnx_path=None,
            fidelity=0,
            wall_s=0.0,
        )
        return store_result(storage, study="w", trial_number=n, result=result)

    real_extend = st.extend_fronts
    raced = []

    def racing_extend(*args: Any, **kwargs: Any) -> Any:
        # once: the other worker ranks a candidate between this one's read and its write
        if not raced:
            raced.append(True)
            keepers[1].add(stored(1000, points[-1]))
        return real_extend(*args, **kwargs)

    for n, flat in enumerate(points[:30]):
        keeper = keepers[rnd.randrange(2)]
        candidate = stored(n, flat)
        if n == 10:
            st.extend_fronts = racing_extend  # type: ignore[assignment]
            try:
                keepers[0].add(candidate)
            finally:
                st.extend_fronts = real_extend
        else:
            keeper.add(candidate)
    assert raced
    for device in devices:
        expected = _recomputed(storage, config, "w", device)
        assert _stored_ranks(storage, "w", device) == expected
        for keeper in keepers:
            keeper.sync()
            assert dict(keeper.fronts()[device].ranks) == expected
    storage.close()


def test_reconcile_ranks_a_candidate_completed_without_ranking(tmp_path: Path) -> None:
    """A worker that died between storing its result and ranking it (recovery completes
    such a trial from its row) leaves a complete candidate unranked: the end of the run
    ranks the device whole."""
    from paretoedge.search import CandidateResult
    from paretoedge.search._results import store_result

    config = _config(budget={"trials": 6})
    runner = SearchRunner(
        config,
        storage_url=f"sqlite:///{tmp_path / 'r.db'}",
        evaluator_factory=SyntheticEvaluator,
        artifacts_dir=tmp_path / "art",
    )
    runner.run()
    spec = CompressionSpec.from_flat({"prune.sparsity": 0.8, "quant.bits": 4})
    result = CandidateResult(
        spec=spec,
        evaluation=synthetic_evaluation(spec.to_flat(), config.devices),
        onnx_path=None,
        fidelity=0,
        wall_s=0.0,
    )
    store_result(runner.storage, study=config.name, trial_number=99, result=result)
    fronts = runner.reconcile_fronts()
    for device in config.devices:
        expected = _recomputed(runner.storage, config, config.name, device)
        assert 99 in expected
        assert _stored_ranks(runner.storage, config.name, device) == expected
        assert dict(fronts[device].ranks) == expected


def test_twin_is_found_by_digest_with_every_device_and_full_fidelity(tmp_path: Path) -> None:
    from paretoedge import storage as st
    from paretoedge.search import CandidateResult
    from paretoedge.search._results import completed_twin, store_result

    config = _config()
    storage = st.open_storage(f"sqlite:///{tmp_path / 't.db'}")
    st.create_study(
        storage,
        name="t",
        config=config.to_dict(),
        devices=list(config.devices),
        objectives=[
            {"name": o.name, "device": o.device, "direction": o.direction}
            for o in config.objectives
        ],
        seed=0,
    )
    spec = CompressionSpec.from_flat({"prune.sparsity": 0.5, "quant.bits": 8})
    other = CompressionSpec.from_flat({"prune.sparsity": 0.5, "quant.bits": 4})

    def put(n: int, s: CompressionSpec, devices: Any, **kw: Any) -> None:
        ev = synthetic_evaluation(s.to_flat(), devices)
        result = CandidateResult(spec=s, evaluation=ev, onnx_path=None, fidelity=7, wall_s=0.0)
        store_result(storage, study="t", trial_number=n, result=result, **kw)

    put(0, spec, ["dev-a"], baseline="teacher")  # a baseline is never a twin
    put(1, spec, ["dev-a", "dev-b"], state="pruned")  # nor an early-stopped trial
    put(2, spec, ["dev-a"])  # misses dev-b
    put(3, other, ["dev-a", "dev-b"])
    assert completed_twin(storage, study="t", spec=spec, devices=["dev-a", "dev-b"]) is None
    put(
        4, CompressionSpec.from_flat({"quant.bits": 8.0, "prune.sparsity": 0.5}), ["dev-a", "dev-b"]
    )
    put(5, spec, ["dev-a", "dev-b"])
    twin = completed_twin(storage, study="t", spec=spec, devices=["dev-a", "dev-b"])
    assert twin is not None and twin.twin_of == 4 and twin.fidelity == 7
    assert twin.evaluation == synthetic_evaluation(spec.to_flat(), ["dev-a", "dev-b"])
    only_a = completed_twin(storage, study="t", spec=spec, devices=["dev-a"])
    assert only_a is not None and only_a.twin_of == 2
    storage.close()
