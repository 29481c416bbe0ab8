"""Work on a stored study outside a normal run: reopen it, add a device, repair rows.

Why apart from the runner: these start from what the database holds, not from a study
file. :func:`resume_runner` is the one way to get a runner for a stored study (the Python
API's :func:`paretoedge.load_study`, ``resume`` and the Ray workers use it);
:func:`add_device` scores stored candidates on a new device without training;
:func:`sync_failed` makes candidate rows follow Optuna's failed trials after a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError
from paretoedge.search._config import StudyConfig, parse_config
from paretoedge.search._evaluator import EvaluatorFactory
from paretoedge.search._results import add_onnx_artifact, metrics_record
from paretoedge.search._runner import BASELINE_ATTR, SearchRunner, SearchSummary
from paretoedge.search._space import baseline_spec, candidate_spec

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)


def config_of(record_config: Mapping[str, Any]) -> StudyConfig:
    """Rebuild the validated config stored with a study (for ``resume`` and ``add-device``)."""
    return parse_config(record_config, check_names=False)


def resume_runner(
    name: str,
    *,
    storage_url: str,
    progress: bool = False,
    evaluator_factory: EvaluatorFactory | None = None,
    devices: Sequence[str] | None = None,
    **kwargs: Any,
) -> SearchRunner:
    """A runner for the stored study ``name``, configured from what the database holds.

    Args:
        devices: The devices to score (default: every device stored with the study).
        kwargs: Further :class:`SearchRunner` arguments (``pruner``, ``artifacts_dir``,
            heartbeat settings).

    Raises:
        NotFoundError: no study of that name.
    """
    from paretoedge.storage import get_study, open_storage

    storage = open_storage(storage_url)
    record = get_study(storage, name=name)
    config = config_of(record.config)
    runner = SearchRunner(
        config,
        storage_url=storage_url,
        study_name=name,
        progress=progress,
        evaluator_factory=evaluator_factory,
        extra_devices=record.devices,
        storage=storage,
        **kwargs,
    )
    if devices is not None:
        runner.devices = tuple(devices)
    return runner


def add_device(
    name: str,
    *,
    device: str,
    storage_url: str,
    evaluator_factory: EvaluatorFactory | None = None,
    progress: bool = True,
    artifacts_dir: Path | None = None,
) -> tuple[SearchRunner, SearchSummary]:
    """Score every complete candidate of study ``name`` on ``device`` and store its front.

    Candidates are scored from their stored ONNX artifact; where that file is gone, the
    candidate is rebuilt from its stored spec and the study's seed
    (:meth:`Evaluator.rebuild_onnx`: compression and recovery, no accuracy measured) and
    re-exported. No accuracy is overwritten.
    """
    from rich.progress import Progress

    from paretoedge import storage as st
    from paretoedge.hardware_profiles import load_profile
    from paretoedge.search._results import onnx_artifact

    load_profile(device)
    runner = resume_runner(
        name,
        storage_url=storage_url,
        evaluator_factory=evaluator_factory,
        artifacts_dir=artifacts_dir,
    )
    runner.devices = tuple(dict.fromkeys([*runner.devices, device]))
    candidates = st.list_candidates(runner.storage, study=name, states=["complete"])
    records = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"scoring on {device}", total=len(candidates))
        for c in candidates:
            path = onnx_artifact(runner.storage, c.id)
            if path is not None:
                metrics = runner.evaluator.score_onnx(path, [device])[device]
            else:
                runner.artifacts_dir.mkdir(parents=True, exist_ok=True)
                out = runner.artifacts_dir / f"trial-{c.trial_number:05d}.onnx"
                if runner.evaluator.rebuild_onnx(c.spec, out):
                    metrics = runner.evaluator.score_onnx(out, [device])[device]
                else:
                    result = runner.evaluator.evaluate(c.spec, devices=[device], onnx_path=out)
                    metrics = result.evaluation.devices[device]
                add_onnx_artifact(runner.storage, c.id, out)
            records.append(metrics_record(c.id, device, metrics))
            bar.advance(task)
    if records:
        st.upsert_device_metrics_many(runner.storage, metrics=records)
    st.add_study_device(runner.storage, study=name, device=device)
    fronts = runner.update_fronts([device])
    runner.fill_test_accuracy(fronts)
    return runner, runner.summary(fronts)


def sync_failed(runner: SearchRunner, study: optuna.Study) -> int:
    """Mark candidates failed whose Optuna trial failed while their process was gone
    (a row left ``running``, or ``complete`` when the heartbeat failed the trial after
    its result was written: the retry re-evaluates it, and rows follow trial states).

    A trial can also die before its worker wrote any candidate row (a Ray driver killed
    between creating the trial and the worker starting it): it gets a failed row with the
    spec of its parameters, so every Optuna trial keeps exactly one candidate row (but for
    a trial whose parameters the compression configs refuse: it failed before any row, and
    there is no spec to store; a warning names it). A trial killed while its parameters
    were being sampled (between Optuna's ``ask`` and the last ``suggest``) has only some:
    its row holds those, the others at their identity values, and its retry keeps the ones
    chosen and samples the rest, so the retry's spec can differ from the failed row's.

    Returns:
        How many rows were written.
    """
    import optuna

    from paretoedge import storage as st

    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    rows = {c.trial_number: c for c in st.list_candidates(runner.storage, study=runner.name)}
    n = 0
    for t in failed:
        row = rows.get(t.number)
        if row is not None and row.state == "failed":
            continue
        baseline = t.user_attrs.get(BASELINE_ATTR)
        if row is not None:
            spec = row.spec
            baseline = row.baseline_name if row.is_baseline else baseline
        elif baseline:
            spec = baseline_spec(baseline)
        else:
            try:
                spec = candidate_spec(runner.config, t.params)
            except ConfigError as exc:
                _log.warning("trial %d keeps no candidate row: %s", t.number, exc)
                continue
        st.upsert_candidate(
            runner.storage,
            study=runner.name,
            trial_number=t.number,
            state="failed",
            spec=spec,
            is_baseline=bool(baseline),
            baseline_name=baseline,
        )
        n += 1
    return n
