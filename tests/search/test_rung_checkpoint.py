"""Early-stopping rungs continue one recovery run from a checkpoint (real pipeline, tiny-bert).

A candidate measured at rungs 2 and 4 of a 7-step recovery exports the same ONNX file as
the candidate trained without rungs, trains 7 steps in all (not 2 + 4 + 7), a stopped one
trains to its rung only, a killed one continues from its last rung's checkpoint, and
nothing is left in the checkpoint directory once the candidate is done.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from paretoedge.compression import CompressionSpec
from paretoedge.objectives import Evaluation
from paretoedge.search import PipelineEvaluator, StudyConfig, parse_config
from paretoedge.search._rung_checkpoint import RungCheckpoint

SPEC = CompressionSpec.from_flat(
    {"prune.sparsity": 0.5, "quant.bits": 8, "recovery.steps": 7, "recovery.batch_size": 8}
)


def _config(name: str, **over: object) -> StudyConfig:
    """A tiny-bert study on small slices of the bundled task."""
    doc: dict[str, object] = {
        "name": name,
        "model": "tiny-bert",
        "task": "sentiment",
        "seq_len": 32,
        "data": {"train_limit": 64, "validation_limit": 32, "test_limit": 32},
        "teacher": {"epochs": 0.05},
        "space": {"quant.bits": [32, 8]},
        "objectives": ["accuracy", "size_bytes"],
        "devices": ["rpi4"],
    }
    return parse_config({**doc, **over})


@pytest.fixture(scope="module")
def evaluator() -> PipelineEvaluator:
    return PipelineEvaluator(_config("rungs"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Rungs:
    """An ``on_rung`` callback that records what it saw and stops or fails where told."""

    def __init__(
        self, stop_at: int | None = None, raise_at: tuple[int, BaseException] | None = None
    ):
        self.seen: dict[int, Evaluation] = {}
        self.stop_at, self.raise_at = stop_at, raise_at

    def __call__(self, step: int, evaluation: Evaluation) -> bool:
        self.seen[step] = evaluation
        if self.raise_at is not None and step == self.raise_at[0]:
            raise self.raise_at[1]
        return step == self.stop_at


def test_a_rung_continued_candidate_is_the_uninterrupted_one(
    evaluator: PipelineEvaluator, tmp_path: Path
) -> None:
    plain = evaluator.evaluate(SPEC, devices=[], onnx_path=tmp_path / "plain.onnx")
    assert plain.trained_steps == 7
    rungs = Rungs()
    ckpts = tmp_path / "rungs"
    staged = evaluator.evaluate(
        SPEC,
        devices=[],
        onnx_path=tmp_path / "staged.onnx",
        rungs=(2, 4),
        on_rung=rungs,
        checkpoints=ckpts,
    )
    assert sorted(rungs.seen) == [2, 4]
    assert (staged.fidelity, staged.trained_steps, staged.pruned) == (7, 7, False)
    assert staged.evaluation == plain.evaluation
    assert _digest(tmp_path / "staged.onnx") == _digest(tmp_path / "plain.onnx")
    assert not list(ckpts.glob("*")), "a completed candidate keeps no checkpoint"


def test_a_stopped_candidate_trains_to_its_rung_only(
    evaluator: PipelineEvaluator, tmp_path: Path
) -> None:
    ckpts = tmp_path / "rungs"
    rungs = Rungs(stop_at=4)
    res = evaluator.evaluate(
        SPEC, devices=[], onnx_path=None, rungs=(2, 4), on_rung=rungs, checkpoints=ckpts
    )
    assert (res.pruned, res.fidelity, res.trained_steps) == (True, 4, 4)
    assert res.evaluation == rungs.seen[4]
    assert not list(ckpts.glob("*")), "a stopped candidate keeps no checkpoint"


def test_a_killed_candidate_continues_from_its_last_rung(
    evaluator: PipelineEvaluator, tmp_path: Path
) -> None:
    ckpts = tmp_path / "rungs"
    killed = Rungs(raise_at=(4, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        evaluator.evaluate(
            SPEC, devices=[], onnx_path=None, rungs=(2, 4), on_rung=killed, checkpoints=ckpts
        )
    saved = RungCheckpoint.of(ckpts, SPEC, evaluator.config.to_dict())
    assert saved.path.is_file()
    state = saved.load()
    assert state is not None and state.state["done"] == 4 and sorted(state.evaluations) == [2, 4]

    # the retry (a fresh evaluator, as in another process) reports the stored rungs
    # without measuring them again and trains the remaining 3 steps only
    again = PipelineEvaluator(evaluator.config, builder=evaluator.builder)
    rungs = Rungs()
    res = again.evaluate(
        SPEC,
        devices=[],
        onnx_path=tmp_path / "resumed.onnx",
        rungs=(2, 4),
        on_rung=rungs,
        checkpoints=ckpts,
    )
    assert rungs.seen == killed.seen
    assert (res.fidelity, res.trained_steps) == (7, 3)
    plain = evaluator.evaluate(SPEC, devices=[], onnx_path=tmp_path / "plain.onnx")
    assert _digest(tmp_path / "resumed.onnx") == _digest(tmp_path / "plain.onnx")
    assert res.evaluation == plain.evaluation
    assert not saved.path.exists()


def test_a_failed_candidate_keeps_no_checkpoint_and_a_bad_file_is_ignored(
    evaluator: PipelineEvaluator, tmp_path: Path
) -> None:
    ckpts = tmp_path / "rungs"
    with pytest.raises(RuntimeError):
        evaluator.evaluate(
            SPEC,
            devices=[],
            onnx_path=None,
            rungs=(2, 4),
            on_rung=Rungs(raise_at=(2, RuntimeError("boom"))),
            checkpoints=ckpts,
        )
    assert not list(ckpts.glob("*"))
    # a file that is not a checkpoint of this spec costs a restart, not the trial
    bad = RungCheckpoint.of(ckpts, SPEC, evaluator.config.to_dict()).path
    bad.write_bytes(b"not a checkpoint")
    res = evaluator.evaluate(
        SPEC, devices=[], onnx_path=None, rungs=(2, 4), on_rung=Rungs(), checkpoints=ckpts
    )
    assert res.trained_steps == 7 and not bad.exists()
    # so does a checkpoint written for another candidate or study under the same name
    RungCheckpoint(path=bad, key="another study").save({"done": 4}, {})
    res = evaluator.evaluate(
        SPEC, devices=[], onnx_path=None, rungs=(2, 4), on_rung=Rungs(), checkpoints=ckpts
    )
    assert res.trained_steps == 7 and not bad.exists()


@pytest.mark.slow
@pytest.mark.tvm
def test_a_study_with_early_stopping_trains_each_candidate_once_and_keeps_no_checkpoint(
    tmp_path: Path, shared_home: Path
) -> None:
    """Through the runner: every candidate's stored fidelity is what it trained, and the
    study's artifacts hold ONNX files only once it is done."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from paretoedge import storage as st
    from paretoedge.search import SearchRunner

    config = _config(
        "rung-study",
        space={"prune.sparsity": {"low": 0.0, "high": 0.75, "step": 0.25}},
        sampler={"name": "random"},
        baselines=[],
        budget={"trials": 4},
        recovery={"steps": 6, "batch_size": 8},
        early_stopping={"min_steps": 2, "eta": 3, "min_peers": 2},
    )
    evaluator = PipelineEvaluator(config)
    evaluator.prepare()  # the teacher's fine-tune is not counted
    steps = [0]
    hook = register_optimizer_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    try:
        runner = SearchRunner(
            config,
            storage_url=f"sqlite:///{tmp_path / 'study.db'}",
            evaluator_factory=lambda _cfg: evaluator,
            artifacts_dir=tmp_path / "artifacts",
        )
        runner.run()
    finally:
        hook.remove()
    cands = st.list_candidates(runner.storage, study="rung-study")
    assert len(cands) == 4 and {c.state for c in cands} <= {"complete", "pruned"}
    # before: each rung retrained from scratch (2 + 6 per complete candidate)
    assert steps[0] == sum(int(c.fidelity or 0) for c in cands)
    files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".onnx" for p in files), files


class _InterruptAt:
    """The study's pruner, but Ctrl-C arrives the first time a trial reports ``step``."""

    def __init__(self, pruner, step: int) -> None:
        self.pruner, self.step, self.fired = pruner, step, False

    def rungs(self, max_fidelity: int) -> tuple[int, ...]:
        return self.pruner.rungs(max_fidelity)

    def prune(self, study, trial) -> bool:
        from paretoedge.search._multifidelity import intermediate_observations

        points = intermediate_observations(trial)
        if not self.fired and points and points[-1].fidelity == self.step:
            self.fired = True
            raise KeyboardInterrupt
        return self.pruner.prune(study, trial)


@pytest.mark.slow
@pytest.mark.tvm
def test_an_interrupted_study_resumes_the_candidate_from_its_rung(
    tmp_path: Path, shared_home: Path
) -> None:
    """Ctrl-C at rung 4 of the first candidate; ``resume`` (config read back from the
    database) retries it from the checkpoint: it trains 6 - 4 steps, not 6."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from paretoedge import storage as st
    from paretoedge.search import SearchRunner, resume_runner
    from paretoedge.search._samplers import halving_pruner

    config = _config(
        "rung-resume",
        space={"prune.sparsity": [0.25, 0.5]},
        sampler={"name": "random"},
        baselines=[],
        budget={"trials": 2},
        recovery={"steps": 6, "batch_size": 8},
        early_stopping={"min_steps": 2, "eta": 2, "min_peers": 2},
    )
    evaluator = PipelineEvaluator(config)
    evaluator.prepare()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    kw = {"evaluator_factory": lambda _cfg: evaluator, "artifacts_dir": tmp_path / "artifacts"}
    first = SearchRunner(
        config, storage_url=url, pruner=_InterruptAt(halving_pruner(config), 4), **kw
    )
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert list((tmp_path / "artifacts" / "rungs").glob("*.pt"))

    steps = [0]
    hook = register_optimizer_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    try:
        resumed = resume_runner("rung-resume", storage_url=url, **kw)
        resumed.run()
    finally:
        hook.remove()
    trials = resumed.study.get_trials()
    assert [t.state.name for t in trials][0] == "FAIL" and len(trials) == 3
    assert {t.state.name for t in trials[1:]} <= {"COMPLETE", "PRUNED"}
    assert trials[1].params == trials[0].params  # the interrupted candidate, retried
    fid = {
        c.trial_number: int(c.fidelity or 0)
        for c in st.list_candidates(resumed.storage, study="rung-resume")
    }
    assert fid[1] > 4  # trial 1 went on past the rung its first attempt reached
    assert steps[0] == (fid[1] - 4) + fid[2]
    assert not list((tmp_path / "artifacts" / "rungs").glob("*"))
