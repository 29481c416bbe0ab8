"""Successive halving on non-dominated rank: the rule, the rung table and the Optuna pruner."""

from __future__ import annotations

import math

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paretoedge.errors import ConfigError
from paretoedge.search._multifidelity import (
    USER_ATTR_PREFIX,
    HalvingConfig,
    Observation,
    ParetoHalving,
    ParetoHalvingPruner,
    RungTable,
    intermediate_observations,
    report_intermediate,
)
from paretoedge.search._optuna_adapter import frozen_trial

# accuracy (max), latency on one device (min), size in bytes (min)
DIRS = ("maximize", "minimize", "minimize")


def obs(key: int, point: tuple[float, ...], fidelity: int = 10, violation: float = 0.0):
    return Observation(key=key, fidelity=fidelity, point=point, violation=violation)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_fidelity": 0}, "early_stopping.min_steps"),
        ({"min_fidelity": 2.5}, "early_stopping.min_steps"),
        ({"min_fidelity": True}, "early_stopping.min_steps"),
        ({"min_fidelity": 5, "eta": 1.0}, "early_stopping.eta"),
        ({"min_fidelity": 5, "eta": float("inf")}, "early_stopping.eta"),
        ({"min_fidelity": 5, "min_peers": 1}, "early_stopping.min_peers"),
        ({"min_fidelity": 5, "min_dominators": 0}, "early_stopping.min_dominators"),
    ],
    ids=["zero", "float", "bool", "eta-1", "eta-inf", "peers-1", "dominators-0"],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        HalvingConfig(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)


def test_config_field_prefix_is_configurable():
    with pytest.raises(ConfigError, match=r"search\.early\.eta"):
        HalvingConfig(min_fidelity=5, eta=0.5, field="search.early")


@pytest.mark.parametrize(
    ("min_fidelity", "eta", "max_fidelity", "expected"),
    [
        (10, 3, 100, (10, 30, 90)),
        (10, 3, 90, (10, 30)),
        (10, 3, 10, ()),
        (1, 2, 17, (1, 2, 4, 8, 16)),
        (2, 1.5, 12, (2, 3, 4, 7, 10)),
    ],
)
def test_rungs_are_geometric_and_below_the_budget(min_fidelity, eta, max_fidelity, expected):
    cfg = HalvingConfig(min_fidelity=min_fidelity, eta=eta)
    assert cfg.rungs(max_fidelity) == expected
    for step in expected:
        assert cfg.is_rung(step)
    assert not cfg.is_rung(min_fidelity + 1) or (min_fidelity + 1) in expected


def test_rungs_do_not_depend_on_the_budget():
    cfg = HalvingConfig(min_fidelity=4, eta=2)
    short, long = cfg.rungs(20), cfg.rungs(200)
    assert long[: len(short)] == short


def test_peers_needed_defaults_to_ceil_eta():
    assert HalvingConfig(min_fidelity=1, eta=2.5).peers_needed == 3
    assert HalvingConfig(min_fidelity=1, eta=2.5, min_peers=7).peers_needed == 7


# -- the rule --------------------------------------------------------------------------------


def rule(eta: float = 3, min_peers: int | None = None, min_dominators: int = 1) -> ParetoHalving:
    cfg = HalvingConfig(
        min_fidelity=10, eta=eta, min_peers=min_peers, min_dominators=min_dominators
    )
    return ParetoHalving(cfg, DIRS)


def test_too_few_peers_never_stop():
    worst = obs(0, (0.1, 100.0, 1e9))
    best = obs(1, (0.9, 1.0, 1e3))
    decision = rule(eta=3).decide(worst, [best])
    assert not decision.stop
    assert decision.peers == 2
    assert "needed" in decision.reason


def test_dominated_candidate_is_stopped_when_enough_peers_rank_better():
    peers = [obs(1, (0.9, 1.0, 1e3)), obs(2, (0.85, 2.0, 2e3))]
    worst = obs(0, (0.5, 5.0, 5e3))
    decision = rule(eta=3).decide(worst, peers)
    assert decision.stop
    # peer 1 also dominates peer 2, so the ranks are 0, 1, 2.
    assert (decision.peers, decision.keep, decision.rank, decision.better) == (3, 1, 2, 2)
    assert decision.dominators == 2
    assert "stopped" in decision.reason


def test_front_member_is_never_stopped_even_when_outnumbered():
    # Fast but inaccurate: not dominated by any of the accurate, slow peers.
    peers = [obs(k, (0.9 - k / 100, 50.0 + k, 1e6)) for k in range(1, 10)]
    fast = obs(0, (0.3, 1.0, 1e6))
    decision = rule(eta=3).decide(fast, peers)
    assert decision.rank == 0
    assert not decision.stop


def test_directions_are_respected():
    peers = [obs(1, (0.9, 1.0, 1e3)), obs(2, (0.85, 2.0, 2e3))]
    worst = obs(0, (0.5, 5.0, 5e3))
    # With every direction flipped the "worst" candidate becomes the best one.
    flipped = ParetoHalving(HalvingConfig(min_fidelity=10), ("minimize", "maximize", "maximize"))
    assert rule().decide(worst, peers).stop
    assert not flipped.decide(worst, peers).stop
    assert flipped.decide(peers[0], [worst, peers[1]]).stop


def test_only_the_same_fidelity_counts():
    peers = [obs(1, (0.9, 1.0, 1e3), fidelity=30), obs(2, (0.85, 2.0, 2e3), fidelity=30)]
    worst = obs(0, (0.5, 5.0, 5e3), fidelity=10)
    decision = rule().decide(worst, peers)
    assert decision.peers == 1
    assert not decision.stop


def test_a_repeated_key_counts_once_with_its_last_point():
    # Trial 1 was retried: its second report at the same rung is worse than candidate 0.
    peers = [
        obs(1, (0.9, 1.0, 1e3)),
        obs(2, (0.85, 2.0, 2e3)),
        obs(1, (0.4, 9.0, 9e3)),
    ]
    x = obs(0, (0.5, 5.0, 5e3))
    decision = rule().decide(x, peers)
    assert decision.peers == 3
    assert (decision.rank, decision.better, decision.dominators) == (1, 1, 1)
    assert decision == rule().decide(x, peers[1:])


def test_larger_eta_keeps_fewer_and_smaller_eta_keeps_more():
    peers = [obs(k, (0.9 - k / 100, 1.0 + k, 1e3)) for k in range(1, 4)]
    # candidate 0 is dominated by peers 1 and 2 only.
    mid = obs(0, (0.875, 3.5, 1e3))
    assert rule(eta=2).decide(mid, peers).keep == 2
    assert rule(eta=2).decide(mid, peers).stop
    assert rule(eta=1.25).decide(mid, peers).keep == 4
    assert not rule(eta=1.25).decide(mid, peers).stop


def test_min_dominators_requires_outright_domination():
    peers = [obs(1, (0.9, 1.0, 1e3)), obs(2, (0.85, 2.0, 2e3)), obs(3, (0.95, 9.0, 1e3))]
    x = obs(0, (0.8, 3.0, 3e3))  # dominated by 1 and 2, not by 3
    assert rule(eta=4, min_dominators=2).decide(x, peers).stop
    assert not rule(eta=4, min_dominators=3).decide(x, peers).stop


def test_infeasible_points_rank_behind_feasible_ones():
    peers = [obs(1, (0.6, 4.0, 4e3)), obs(2, (0.55, 4.5, 4e3))]
    # Better on every objective, but violates a constraint (e.g. does not fit the flash).
    x = obs(0, (0.9, 1.0, 1e3), violation=0.5)
    decision = rule().decide(x, peers)
    assert decision.rank == 2
    assert decision.stop
    assert not rule().decide(obs(0, (0.9, 1.0, 1e3)), peers).stop


def test_bad_points_are_config_errors():
    with pytest.raises(ConfigError, match="point"):
        rule().decide(obs(0, (0.5, 1.0)), [])
    with pytest.raises(ConfigError, match="finite"):
        rule().decide(obs(0, (math.nan, 1.0, 1.0)), [])
    with pytest.raises(ConfigError, match=r"directions\[1\]"):
        ParetoHalving(HalvingConfig(min_fidelity=1), ("maximize", "lower"))  # type: ignore[arg-type]


points = st.tuples(
    st.floats(0, 1, allow_nan=False),
    st.floats(0.1, 100, allow_nan=False),
    st.floats(1, 1e6, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(points, min_size=1, max_size=12), st.sampled_from([2, 3, 4]))
def test_properties_of_one_rung(pts, eta):
    """Front members go on, at least ceil(n/eta) go on, and peer order does not matter."""
    r = rule(eta=eta, min_peers=2)
    group = [obs(k, p) for k, p in enumerate(pts)]
    decisions = [r.decide(o, [g for g in group if g is not o]) for o in group]
    keep = max(1, math.ceil(len(group) / eta))
    assert sum(not d.stop for d in decisions) >= min(keep, len(group))
    for d in decisions:
        if d.rank == 0:
            assert not d.stop
        if d.stop:
            assert d.dominators >= 1 and d.better >= d.keep
    for o, d in zip(group, decisions, strict=True):
        others = [g for g in group if g is not o]
        assert r.decide(o, list(reversed(others))) == d


# -- rung table ------------------------------------------------------------------------------


def test_rung_table_decides_against_history_and_new_results():
    history = [obs(1, (0.9, 1.0, 1e3)), obs(2, (0.85, 2.0, 2e3)), obs(3, (0.1, 1.0, 1e3), 30)]
    table = RungTable(rule(), history)
    assert len(table.at(10)) == 2 and len(table.at(30)) == 1
    assert table.observe(obs(0, (0.5, 5.0, 5e3))).stop
    assert not table.observe(obs(4, (0.5, 5.0, 5e3), fidelity=30)).stop
    assert len(table.at(10)) == 3


def test_rung_table_replaces_a_retried_observation():
    table = RungTable(rule(min_peers=2))
    table.observe(obs(1, (0.9, 1.0, 1e3)))
    table.observe(obs(1, (0.2, 9.0, 9e3)))
    assert table.at(10) == (obs(1, (0.2, 9.0, 9e3)),)
    assert not table.observe(obs(0, (0.5, 5.0, 5e3))).stop


# -- the Optuna pruner -----------------------------------------------------------------------


def _study(storage: str | None = None, name: str = "mf") -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        study_name=name,
        directions=list(DIRS),
        sampler=optuna.samplers.RandomSampler(seed=0),
        load_if_exists=True,
    )


def test_report_intermediate_round_trips_through_user_attrs():
    study = _study()
    trial = study.ask()
    report_intermediate(trial, 30, (0.5, 2.0, 1e3), violation=0.25)
    report_intermediate(trial, 10, (0.4, 2.0, 1e3))
    frozen = frozen_trial(study, trial)
    assert f"{USER_ATTR_PREFIX}30" in frozen.user_attrs
    got = intermediate_observations(frozen)
    assert [o.fidelity for o in got] == [10, 30]
    assert got[1].point == (0.5, 2.0, 1e3) and got[1].violation == 0.25
    with pytest.raises(ConfigError, match="step"):
        report_intermediate(trial, -1, (0.4, 2.0, 1e3))
    with pytest.raises(ConfigError, match="finite"):
        report_intermediate(trial, 5, (math.inf, 2.0, 1e3))


def test_pruner_stops_dominated_trials_and_keeps_the_front():
    study = _study()
    pruner = ParetoHalvingPruner(HalvingConfig(min_fidelity=10, eta=3), DIRS)
    # Two finished candidates that passed rung 10 with good points.
    for acc, lat in ((0.9, 1.0), (0.85, 2.0)):
        t = study.ask()
        report_intermediate(t, 10, (acc, lat, 1e3))
        study.tell(t, (acc + 0.02, lat, 1e3))
    dominated = study.ask()
    report_intermediate(dominated, 10, (0.5, 5.0, 5e3))
    front = study.ask()
    report_intermediate(front, 10, (0.3, 0.5, 1e3))

    def frozen(t: optuna.Trial) -> optuna.trial.FrozenTrial:
        return frozen_trial(study, t)

    assert pruner.prune(study, frozen(dominated))
    assert not pruner.prune(study, frozen(front))
    decision = pruner.decide(study, frozen(dominated))
    assert decision is not None and decision.peers == 4 and decision.dominators == 2


def test_pruner_only_decides_at_rungs_and_with_points():
    study = _study()
    pruner = ParetoHalvingPruner(HalvingConfig(min_fidelity=10, eta=3, min_peers=2), DIRS)
    good = study.ask()
    report_intermediate(good, 10, (0.9, 1.0, 1e3))
    report_intermediate(good, 15, (0.9, 1.0, 1e3))
    bad = study.ask()
    assert pruner.decide(study, frozen_trial(study, bad)) is None
    report_intermediate(bad, 15, (0.1, 9.0, 9e3))  # 15 is no rung
    assert pruner.decide(study, frozen_trial(study, bad)) is None
    report_intermediate(bad, 30, (0.1, 9.0, 9e3))  # a rung, but nobody else is there
    assert not pruner.prune(study, frozen_trial(study, bad))
    report_intermediate(good, 30, (0.9, 1.0, 1e3))
    assert pruner.prune(study, frozen_trial(study, bad))


def test_pruner_ignores_failed_trials():
    study = _study()
    pruner = ParetoHalvingPruner(HalvingConfig(min_fidelity=10, eta=3, min_peers=2), DIRS)
    failed = study.ask()
    report_intermediate(failed, 10, (0.9, 1.0, 1e3))
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    bad = study.ask()
    report_intermediate(bad, 10, (0.1, 9.0, 9e3))
    assert not pruner.prune(study, frozen_trial(study, bad))


def test_pruner_refuses_a_study_with_other_directions():
    study = optuna.create_study(directions=["maximize", "minimize"])
    pruner = ParetoHalvingPruner(HalvingConfig(min_fidelity=1), DIRS)
    t = study.ask()
    with pytest.raises(ConfigError, match="directions"):
        pruner.prune(study, frozen_trial(study, t))


def _toy_objective(pruner: ParetoHalvingPruner, max_steps: int, steps_done: list[int]):
    """Accuracy grows with steps towards a ceiling set by the sampled 'quality'."""

    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        quality = trial.suggest_float("quality", 0.0, 1.0)
        latency = 1.0 + 0.1 * trial.suggest_int("slow", 0, 2)
        size = 1e3
        done = 0
        for rung in pruner.rungs(max_steps):
            done = rung
            accuracy = quality * (1 - math.exp(-rung / 20))
            report_intermediate(trial, rung, (accuracy, latency, size))
            if pruner.prune(trial.study, frozen_trial(trial.study, trial)):
                steps_done.append(done)
                raise optuna.TrialPruned()
        steps_done.append(max_steps)
        return quality * (1 - math.exp(-max_steps / 20)), latency, size

    return objective


def test_pruner_in_a_real_optimize_loop_saves_steps_and_keeps_the_front():
    pruner = ParetoHalvingPruner(HalvingConfig(min_fidelity=5, eta=3), DIRS)
    study = _study(name="loop")
    steps: list[int] = []
    study.optimize(_toy_objective(pruner, 60, steps), n_trials=24)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, states
    assert sum(steps) < 24 * 60
    # Partial metrics stay with every pruned trial.
    for t in pruned:
        assert intermediate_observations(t)
    # No pruned candidate would have been on the front of the finished ones at the final
    # budget: its (deterministic) final point is dominated by a completed trial's.
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in pruned:
        final = (
            t.params["quality"] * (1 - math.exp(-60 / 20)),
            1.0 + 0.1 * t.params["slow"],
            1e3,
        )
        assert any(
            c.values[0] >= final[0] and c.values[1] <= final[1] and tuple(c.values) != final
            for c in complete
        ), (t.number, final)


def test_pruner_state_is_shared_through_the_storage(tmp_path):
    """Two Study objects on one SQLite file (two processes) see each other's rungs."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first, second = _study(url), _study(url)
    pruner = ParetoHalvingPruner(HalvingConfig(min_fidelity=10, eta=3), DIRS)
    for acc in (0.9, 0.8):
        t = first.ask()
        report_intermediate(t, 10, (acc, 1.0, 1e3))
        first.tell(t, (acc, 1.0, 1e3))
    mine = second.ask()
    report_intermediate(mine, 10, (0.5, 2.0, 2e3))
    assert pruner.prune(second, frozen_trial(second, mine))
