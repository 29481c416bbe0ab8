"""The controller's plumbing: Optuna study, storage, fronts per device, resume, add-device.

Candidates are measured by the cheap synthetic evaluator of ``_synthetic.py`` so the true
front of the enumerable space is known by brute force; storage, Optuna, constraints and
ranking are the real ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import (  # noqa: E402
    SyntheticEvaluator,
    chosen_completely,
    synthetic_config,
    synthetic_evaluation,
    twin_trials,
)

from paretoedge.compression import CompressionSpec  # noqa: E402
from paretoedge.search import (  # noqa: E402
    SearchRunner,
    add_device,
    enumerate_space,
    resume_runner,
)


def _brute_front(config, device, evaluations):
    """Indices of the constrained front, by the definition, with no shared code."""
    objs = config.front_objectives(device)

    def vec(ev):
        return [(-1 if o.direction == "maximize" else 1) * o.value(ev) for o in objs]

    def viol(ev):
        v = sum(c.violation(ev) for c in config.device_constraints(device))
        return v + (0 if ev.devices[device].feasible else 1)

    feas = [k for k, ev in evaluations.items() if viol(ev) == 0]
    if not feas:
        best = min(viol(ev) for ev in evaluations.values())
        return {k for k, ev in evaluations.items() if viol(ev) == best}

    def dom(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return {k for k in feas if not any(dom(vec(evaluations[j]), vec(evaluations[k])) for j in feas)}


def _runner(tmp_path: Path, config=None, **kw) -> SearchRunner:
    return SearchRunner(
        config or synthetic_config(),
        storage_url=f"sqlite:///{tmp_path / 'study.db'}",
        evaluator_factory=SyntheticEvaluator,
        artifacts_dir=tmp_path / "artifacts",
        **kw,
    )


def test_study_stores_candidates_and_a_front_per_device(tmp_path: Path) -> None:
    from paretoedge import storage as st

    runner = _runner(tmp_path)
    summary = runner.run()
    assert summary.trials_complete == 8
    cands = st.list_candidates(runner.storage, study="synthetic")
    assert len(cands) == 8 and all(c.state == "complete" for c in cands)
    assert [(c.trial_number, c.baseline_name) for c in cands[:2]] == [(0, "teacher"), (1, "int8")]
    assert cands[0].spec == CompressionSpec() and cands[1].spec.quant.bits == 8
    for device in ("dev-a", "dev-b"):
        evs = {c.trial_number: synthetic_evaluation(c.flat, [device]) for c in cands}
        expected = _brute_front(runner.config, device, evs)
        page = st.get_front(runner.storage, study="synthetic", device=device)
        assert {e.candidate.trial_number for e in page.entries} == expected
        assert set(summary.fronts[device].front) == expected
        # test accuracy is measured for front members and the baselines only
        for c in st.list_candidates(runner.storage, study="synthetic"):
            in_any_front = any(c.trial_number in f.front for f in summary.fronts.values())
            assert (c.test_accuracy is not None) == (in_any_front or c.is_baseline)
    assert st.get_study(runner.storage, name="synthetic").status == "finished"


def test_front_of_full_enumeration_matches_brute_force(tmp_path: Path) -> None:
    from paretoedge import storage as st

    config = synthetic_config(baselines=[], sampler="random", budget={"trials": 32})
    points = list(enumerate_space(config.space))
    assert len(points) == 32
    runner = _runner(tmp_path, config)
    for p in points:
        runner.study.enqueue_trial(p)
    runner.run()
    from paretoedge.search import normalize_flat

    for device in config.devices:
        evs = {
            json.dumps(normalize_flat(p), sort_keys=True): synthetic_evaluation(p, [device])
            for p in points
        }
        expected = _brute_front(config, device, evs)
        page = st.get_front(runner.storage, study="synthetic", device=device)
        got = {json.dumps(e.candidate.flat, sort_keys=True) for e in page.entries}
        assert got == expected
        assert 1 < len(expected) < len(points)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "gp", "random"])
def test_every_sampler_runs_with_constraints(tmp_path: Path, sampler: str) -> None:
    config = synthetic_config(sampler=sampler, budget={"trials": 5})
    summary = _runner(tmp_path, config).run()
    assert summary.trials_complete == 5


def test_resume_runs_only_missing_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "evals.log"
    monkeypatch.setenv("PE_TEST_LOG", str(log))
    first = _runner(tmp_path)
    first.run(n_trials=5)
    assert len(log.read_text().splitlines()) == 5 - twin_trials(first.study)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    runner = resume_runner("synthetic", storage_url=url, evaluator_factory=SyntheticEvaluator)
    summary = runner.run()
    assert summary.trials_complete == 8
    evaluated = 8 - twin_trials(runner.study)
    assert len(log.read_text().splitlines()) == evaluated
    # a finished study does nothing more
    resume_runner("synthetic", storage_url=url, evaluator_factory=SyntheticEvaluator).run()
    assert len(log.read_text().splitlines()) == evaluated


def test_add_device_scores_stored_candidates_without_reevaluating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paretoedge import storage as st

    pytest.importorskip("paretoedge.hardware_profiles")
    runner = _runner(tmp_path)
    runner.run()
    log = tmp_path / "evals.log"
    monkeypatch.setenv("PE_TEST_LOG", str(log))
    from paretoedge.hardware_profiles import profile_names

    device = profile_names()[0]
    url = f"sqlite:///{tmp_path / 'study.db'}"
    # one artifact is gone: that candidate is rebuilt from its stored spec, the rest are not
    lost = tmp_path / "artifacts" / "trial-00003.onnx"
    lost.unlink()
    runner2, summary = add_device(
        "synthetic",
        device=device,
        storage_url=url,
        evaluator_factory=SyntheticEvaluator,
        progress=False,
        artifacts_dir=tmp_path / "artifacts",
    )
    rebuilt = [json.loads(line)["flat"] for line in log.read_text().splitlines()]
    spec3 = st.get_candidate(runner2.storage, study="synthetic", trial_number=3).flat
    assert rebuilt == [spec3] and lost.is_file()
    cands = st.list_candidates(runner2.storage, study="synthetic", device=device)
    assert all(c.metrics_for(device) is not None for c in cands)
    evs = {c.trial_number: synthetic_evaluation(c.flat, [device]) for c in cands}
    page = st.get_front(runner2.storage, study="synthetic", device=device)
    assert {e.candidate.trial_number for e in page.entries} == _brute_front(
        runner2.config, device, evs
    )
    assert device in st.get_study(runner2.storage, name="synthetic").devices
    assert set(summary.fronts) == {device}


def test_early_stopping_stores_pruned_candidates_outside_fronts(tmp_path: Path) -> None:
    from paretoedge import storage as st

    config = synthetic_config(
        recovery={"steps": 18},
        early_stopping={"min_steps": 2, "eta": 3, "min_peers": 2},
        sampler="random",
        budget={"trials": 14},
    )
    runner = _runner(tmp_path, config)
    assert runner.pruner is not None and tuple(runner.pruner.rungs(18)) == (2, 6)
    summary = runner.run()
    cands = st.list_candidates(runner.storage, study="synthetic")
    pruned = [c for c in cands if c.state == "pruned"]
    assert pruned, "nothing was stopped early"
    for c in pruned:
        assert c.fidelity in (2, 6) and c.accuracy is not None
        assert all(c.trial_number not in f.front for f in summary.fronts.values())
    complete = [c for c in cands if c.state == "complete"]
    assert all(c.fidelity == 18 for c in complete if not c.is_baseline)
    # the budget counts complete and pruned trials
    assert len(complete) + len(pruned) == 14


def test_a_repeated_configuration_reuses_its_stored_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A space of two configurations and eight trials: each configuration is evaluated once,
    every later proposal of it completes with the stored numbers (and says whose)."""
    from paretoedge import storage as st
    from paretoedge.search import TWIN_ATTR

    log = tmp_path / "evals.log"
    monkeypatch.setenv("PE_TEST_LOG", str(log))
    config = synthetic_config(
        space={"ffn.keep": [1.0, 0.5]},
        baselines=[],
        sampler={"name": "random"},
        budget={"trials": 8},
    )
    runner = _runner(tmp_path, config)
    summary = runner.run()
    assert summary.trials_complete == 8
    evaluated = [json.loads(line)["flat"]["ffn.keep"] for line in log.read_text().splitlines()]
    assert sorted(evaluated) == [0.5, 1.0]
    cands = {c.trial_number: c for c in st.list_candidates(runner.storage, study="synthetic")}
    twins = {
        t.number: t.user_attrs[TWIN_ATTR] for t in runner.study.trials if TWIN_ATTR in t.user_attrs
    }
    assert len(twins) == 6
    for number, twin in twins.items():
        c, original = cands[number], cands[twin]
        assert TWIN_ATTR not in runner.study.trials[twin].user_attrs
        assert c.spec == original.spec and c.state == "complete"
        assert (c.accuracy, c.size_bytes) == (original.accuracy, original.size_bytes)
        assert {m.device: m.latency_ms for m in c.metrics} == {
            m.device: m.latency_ms for m in original.metrics
        }


@pytest.mark.parametrize("where", ["settle", "display"])
def test_ctrl_c_after_the_result_is_stored_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """SIGINT arriving after a trial's result was committed but before its objective
    returned (as ``paretoedge`` stopped over HTTP right after its first complete candidate)
    used to fail the Optuna trial, and recovery then failed the stored row and emptied the
    front. Now the interrupt waits until Optuna has recorded the trial: the run stops with
    the trial complete, its row complete and on the front."""
    import os
    import signal

    import optuna

    from paretoedge import storage as st
    from paretoedge.search._display import Display
    from paretoedge.search._fronts import FrontKeeper

    runner = _runner(tmp_path, synthetic_config(baselines=[], budget={"trials": 5}))
    runner.progress = where == "display"
    target = (FrontKeeper, "settle") if where == "settle" else (Display, "finish_trial")
    original = getattr(*target)

    def interrupted(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # handled on the next bytecode: here
        return original(self, *args, **kwargs)

    monkeypatch.setattr(*target, interrupted)
    handler = signal.getsignal(signal.SIGINT)  # Python's, or one an earlier test left (Ray's)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    (trial,) = runner.study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    (row,) = st.list_candidates(runner.storage, study="synthetic")
    assert row.state == "complete" and row.trial_number == trial.number
    assert st.get_study(runner.storage, name="synthetic").status == "stopped"
    for device in runner.devices:
        page = st.get_front(runner.storage, study="synthetic", device=device)
        assert [e.candidate.id for e in page.entries] == [row.id]
    assert not runner.interrupts.pending
    assert signal.getsignal(signal.SIGINT) is handler  # restored after the held stretch


def test_a_trial_that_died_before_its_row_was_written_gets_a_failed_row(tmp_path: Path) -> None:
    """A trial created (and its parameters sampled) whose process died before the worker
    wrote its candidate row is failed on resume and gets a failed row with its spec, so every
    Optuna trial keeps exactly one candidate row."""
    import optuna

    from paretoedge import storage as st
    from paretoedge.search import suggest
    from paretoedge.search._optuna_adapter import set_trial_state

    runner = _runner(tmp_path, synthetic_config(baselines=[], budget={"trials": 3}))
    study = runner.study
    orphan = study.ask()
    params = suggest(orphan, runner.config.space)
    set_trial_state(study, orphan, optuna.trial.TrialState.FAIL)
    summary = runner.run()
    assert summary.trials_complete == 3
    cands = {c.trial_number: c for c in st.list_candidates(runner.storage, study="synthetic")}
    assert sorted(cands) == sorted(t.number for t in runner.study.trials)
    row = cands[orphan.number]
    assert row.state == "failed" and not row.is_baseline
    for key, value in params.items():
        assert row.flat[key] == value


def test_a_trial_that_died_while_sampling_its_parameters_gets_a_row_and_a_retry(
    tmp_path: Path,
) -> None:
    """A trial killed after ``ask`` and its first parameter but before the rest (a Ray
    driver samples them one by one) is failed on resume with a failed row holding the
    parameter chosen (one row per trial), and its retry keeps that parameter."""
    import optuna

    from paretoedge import storage as st

    config = synthetic_config(baselines=[], sampler={"name": "random"}, budget={"trials": 3})
    runner = _runner(tmp_path, config)
    study = runner.study
    orphan = study.ask()
    first = config.space[0]
    assert first.key == "prune.sparsity" and first.low is not None and first.high is not None
    chosen = orphan.suggest_float(first.key, first.low, first.high, step=first.step)
    # left RUNNING with no claim bound to it: resume finds it dead, fails and retries it
    assert not chosen_completely(config.space, {first.key: chosen})
    summary = runner.run()
    assert summary.trials_complete == 3
    rows = {c.trial_number: c for c in st.list_candidates(runner.storage, study="synthetic")}
    assert sorted(rows) == sorted(t.number for t in runner.study.trials)
    assert rows[orphan.number].state == "failed"
    assert rows[orphan.number].flat["prune.sparsity"] == chosen
    (retry,) = [
        t for t in runner.study.trials if t.system_attrs.get("failed_trial") == orphan.number
    ]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.params["prune.sparsity"] == chosen


def test_a_candidate_the_compression_configs_refuse_fails_without_a_row(tmp_path: Path) -> None:
    """The space yields a typed spec: a value the configs refuse (possible in a study read
    without its name checks) fails that trial in Optuna before anything is stored, the run
    goes on, and the failed-row repair of resume skips it (there is no spec to store)."""
    import optuna

    from paretoedge import storage as st
    from paretoedge.search._maintenance import sync_failed

    config = synthetic_config(
        space={"prune.sparsity": [0.99, 0.5], "quant.bits": [32, 8]},
        baselines=[],
        sampler={"name": "random"},
        budget={"trials": 6},
    )
    runner = _runner(tmp_path, config)
    runner.run()
    trials = runner.study.get_trials()
    failed = {t.number for t in trials if t.state == optuna.trial.TrialState.FAIL}
    assert failed and all(t.params["prune.sparsity"] == 0.99 for t in trials if t.number in failed)
    rows = {c.trial_number: c for c in st.list_candidates(runner.storage, study=config.name)}
    assert not failed & set(rows)
    assert all(c.spec.prune is not None and c.spec.prune.sparsity == 0.5 for c in rows.values())
    assert sync_failed(runner, runner.study) == 0
