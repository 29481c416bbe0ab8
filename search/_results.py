"""A trial's result in the database: writing it, reading it back, finding a twin.

Why apart from the runner: the same rows are written by a run (:meth:`SearchRunner.objective`),
by the structural screen, by ``add-device`` and by recovery after a crash, and read back
when a sampler proposes a spec that was already evaluated. One module owns how a
:class:`~paretoedge.search._evaluator.CandidateResult` maps onto candidate, device-metrics
and artifact rows, and how a stored row becomes an :class:`Evaluation` again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from paretoedge.errors import ConfigError
from paretoedge.objectives import DeviceMetrics, Evaluation
from paretoedge.search._evaluator import CandidateResult

if TYPE_CHECKING:
    from paretoedge.compression import CompressionSpec
    from paretoedge.storage import (
        CandidateRecord,
        CandidateValues,
        DeviceMetricsRecord,
        FinishedTrial,
        FrontExtension,
        Storage,
    )


def normalize_flat(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys as ``CompressionSpec.to_flat()`` writes them (every field of every enabled
    transform), for tools and tables that keep the flat form (``bench/``, displays). An
    invalid spec is returned as given. The search itself passes typed specs."""
    from paretoedge.compression import CompressionSpec

    try:
        return CompressionSpec.from_flat(flat).to_flat()
    except ConfigError:
        return dict(flat)


def evaluation_of(candidate: CandidateRecord) -> Evaluation:
    """The :class:`Evaluation` of a stored complete candidate."""
    return Evaluation(
        accuracy=float(candidate.accuracy if candidate.accuracy is not None else math.nan),
        size_bytes=int(candidate.size_bytes or 0),
        parameters=int(candidate.parameters or 0),
        sparsity=float(candidate.sparsity or 0.0),
        devices={m.device: DeviceMetrics.from_object(m) for m in candidate.metrics},
    )


def metrics_record(candidate_id: int, device: str, m: DeviceMetrics) -> DeviceMetricsRecord:
    """The storage row of one device's metrics of candidate ``candidate_id``."""
    from paretoedge.storage import DeviceMetricsRecord

    return DeviceMetricsRecord(
        candidate_id=candidate_id,
        device=device,
        latency_ms=m.latency_ms,
        peak_memory_bytes=m.peak_memory_bytes,
        energy_mj=m.energy_mj,
        flash_bytes=m.flash_bytes,
        sram_bytes=m.sram_bytes,
        feasible=m.feasible,
        violations=tuple(m.violations),
        latency_worst_ms=m.latency_worst_ms,
    )


def onnx_artifact(storage: Storage, candidate_id: int) -> Path | None:
    """The candidate's newest stored ONNX file that is still on disk."""
    from paretoedge.storage import list_artifacts

    for a in reversed(list_artifacts(storage, candidate_id=candidate_id)):
        if a.kind == "onnx" and Path(a.path).is_file():
            return Path(a.path)
    return None


def add_onnx_artifact(storage: Storage, candidate_id: int, path: Path) -> None:
    """Record ``path`` (with its sha256 and size) as the candidate's ONNX artifact."""
    from paretoedge import storage as st

    data = path.read_bytes()
    st.add_artifact(
        storage,
        candidate_id=candidate_id,
        kind="onnx",
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )


def store_result(
    storage: Storage,
    *,
    study: str,
    trial_number: int,
    result: CandidateResult,
    baseline: str | None = None,
    state: Literal["complete", "pruned"] = "complete",
) -> CandidateRecord:
    """Write a complete (or early-stopped) candidate, its device metrics and its ONNX
    artifact; returns the stored candidate with the metrics written (what the fronts rank,
    without reading it back). Only complete candidates are ranked into fronts."""
    from paretoedge import storage as st

    rec = st.upsert_candidate(
        storage,
        study=study,
        trial_number=trial_number,
        state=state,
        spec=result.spec,
        is_baseline=baseline is not None,
        baseline_name=baseline,
        **dataclasses.asdict(stored_values(result)),
    )
    metrics = expected_metrics(rec.id, result)
    st.upsert_device_metrics_many(storage, metrics=metrics)
    if result.onnx_path is not None and result.onnx_path.is_file():
        add_onnx_artifact(storage, rec.id, result.onnx_path)
    return dataclasses.replace(rec, metrics=metrics)


def finish_result(
    storage: Storage,
    *,
    study: str,
    candidate_id: int,
    trial_number: int,
    result: CandidateResult,
    baseline: str | None = None,
    state: Literal["complete", "pruned"] = "complete",
    fronts: FrontExtension | None = None,
) -> FinishedTrial:
    """:func:`store_result` for a trial whose row exists (``candidate_id``, from
    :func:`paretoedge.storage.start_trial`): the result, its device metrics and the front
    ranks (if given) in one transaction (:func:`paretoedge.storage.finish_trial`)."""
    from paretoedge import storage as st

    done = st.finish_trial(
        storage,
        study=study,
        candidate_id=candidate_id,
        trial_number=trial_number,
        state=state,
        spec=result.spec,
        metrics=expected_metrics(candidate_id, result),
        values=stored_values(result),
        fronts=fronts,
        is_baseline=baseline is not None,
        baseline_name=baseline,
    )
    if result.onnx_path is not None and result.onnx_path.is_file():
        add_onnx_artifact(storage, candidate_id, result.onnx_path)
    return done


def stored_values(result: CandidateResult) -> CandidateValues:
    """The measured columns a result is stored with (every write path uses them)."""
    from paretoedge.storage import CandidateValues

    ev = result.evaluation
    return CandidateValues(
        accuracy=float(ev.accuracy),
        size_bytes=ev.size_bytes,
        parameters=ev.parameters,
        sparsity=float(ev.sparsity),
        fidelity=result.fidelity,
        wall_s=result.wall_s,
    )


def expected_metrics(candidate_id: int, result: CandidateResult) -> tuple[DeviceMetricsRecord, ...]:
    """The device-metrics rows a result is stored as."""
    return tuple(metrics_record(candidate_id, d, m) for d, m in result.evaluation.devices.items())


def expected_record(
    running: CandidateRecord, result: CandidateResult, state: str = "complete"
) -> CandidateRecord:
    """The candidate row ``running`` becomes once ``result`` is stored (what
    :func:`finish_result` writes), to rank it before writing it."""
    values = stored_values(result)
    return dataclasses.replace(
        running,
        state=state,  # type: ignore[arg-type]
        accuracy=values.accuracy,
        size_bytes=values.size_bytes,
        parameters=values.parameters,
        sparsity=values.sparsity,
        fidelity=values.fidelity,
        wall_s=values.wall_s,
        metrics=expected_metrics(running.id, result),
    )


def completed_twin(
    storage: Storage, *, study: str, spec: CompressionSpec, devices: Sequence[str]
) -> CandidateResult | None:
    """The stored result of a complete candidate with the same spec, if there is one.

    Samplers propose a configuration again (NSGA-II's crossover and mutation on a small
    discrete space often do). The evaluator is deterministic for a spec (it seeds
    compression and recovery with the study seed), so re-evaluating would store the same
    numbers at the cost of a full compression; the twin's accuracy, size and device
    metrics are reused instead (Optuna still records the trial, so samplers see it).
    Only full-fidelity (complete, not early-stopped) twins that are not baselines and have
    every device of this run qualify; the earliest such trial is reused. One indexed lookup
    on the spec's digest (:func:`paretoedge.storage.candidates_with_spec`), whatever the
    size of the study.
    """
    from paretoedge import storage as st

    twins = st.candidates_with_spec(
        storage,
        study=study,
        spec=spec,
        states=["complete"],
        baselines=False,
        devices=devices,
        limit=1,
    )
    if not twins:
        return None
    c = twins[0]
    return CandidateResult(
        spec=c.spec,
        evaluation=evaluation_of(c),
        onnx_path=onnx_artifact(storage, c.id),
        fidelity=int(c.fidelity or 0),
        wall_s=0.0,
        twin_of=c.trial_number,
    )
