"""A cheap, deterministic evaluator for exercising the controller's real plumbing.

It stands in for compression + hardware models only where a test is about the controller
(storage, fronts, resume, concurrency); the real pipeline is exercised by
``test_study_tiny_bert.py``. Metrics follow simple monotone rules of the spec so that the
true Pareto front of an enumerable space is known by brute force.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from paretoedge.compression import CompressionSpec
from paretoedge.objectives import DeviceMetrics, Evaluation
from paretoedge.search import CandidateResult, Evaluator, StudyConfig

DEVICE_SPEED = {"dev-a": 1.0, "dev-b": 3.0, "dev-c": 0.5}


def synthetic_evaluation(flat: Mapping[str, Any], devices: Sequence[str]) -> Evaluation:
    sparsity = float(flat.get("prune.sparsity", 0.0))
    bits = int(flat.get("quant.bits", 32))
    keep = float(flat.get("ffn.keep", 1.0))
    cluster = flat.get("quant.scheme") == "cluster"
    accuracy = 0.92 - 0.4 * sparsity**2 - {32: 0.0, 16: 0.001, 8: 0.01, 4: 0.06}[bits]
    accuracy -= 0.08 * (1 - keep) - (0.02 if cluster else 0.0)
    size = int(4_000_000 * (1 - 0.7 * (1 - keep)) * (1 - sparsity) * bits / 32)
    devs = {}
    for d in devices:
        speed = DEVICE_SPEED.get(d, 2.0)
        # dev-b gains nothing from sparsity, dev-c gains most from low bit-widths
        eff_sparsity = 0.0 if d == "dev-b" else sparsity
        bit_gain = (bits / 32) ** (1.5 if d == "dev-c" else 0.5)
        lat = speed * 10 * (1 - 0.7 * (1 - keep)) * (1 - 0.8 * eff_sparsity) * bit_gain
        devs[d] = DeviceMetrics(
            latency_ms=round(lat, 6),
            peak_memory_bytes=size + 100_000,
            energy_mj=round(lat * 2.5, 6),
            flash_bytes=size if d == "dev-c" else None,
            sram_bytes=100_000 if d == "dev-c" else None,
            feasible=not (d == "dev-c" and size > 2_000_000),
            violations=("flash",) if d == "dev-c" and size > 2_000_000 else (),
        )
    return Evaluation(
        accuracy=round(accuracy, 6),
        size_bytes=size,
        parameters=1000,
        sparsity=sparsity,
        devices=devs,
    )


class SyntheticEvaluator(Evaluator):
    """Writes a small JSON "artifact" per candidate so add-device can re-score from it.

    ``PE_TEST_SLEEP`` (seconds) makes each evaluation slow, for the kill/resume test;
    ``PE_TEST_LOG`` appends one line per evaluation so a test can count recomputations.
    """

    def __init__(self, config: StudyConfig) -> None:
        self.config = config

    def evaluate(
        self,
        spec: CompressionSpec,
        *,
        devices: Sequence[str],
        onnx_path: Path | None,
        rungs: Sequence[int] = (),
        on_rung: Any = None,
        checkpoints: Path | None = None,
    ) -> CandidateResult:
        start = time.perf_counter()
        flat = spec.to_flat()
        log = os.environ.get("PE_TEST_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(json.dumps({"pid": os.getpid(), "flat": dict(flat)}, sort_keys=True))
                fh.write("\n")
        delay = float(os.environ.get("PE_TEST_SLEEP", "0"))
        if delay:
            time.sleep(delay)
        if onnx_path is not None:
            onnx_path.write_text(json.dumps(dict(flat), sort_keys=True))
        full = int(flat.get("recovery.steps", 0))
        for r in rungs:
            if on_rung is None or not 0 < r < full:
                continue
            final = synthetic_evaluation(flat, devices)
            # accuracy recovers with steps: the partial point is worse by a fixed schedule
            part = replace(final, accuracy=round(final.accuracy - 0.2 * (1 - r / full), 6))
            if on_rung(r, part):
                return CandidateResult(
                    spec=spec,
                    evaluation=part,
                    onnx_path=onnx_path,
                    fidelity=r,
                    wall_s=time.perf_counter() - start,
                    pruned=True,
                )
        return CandidateResult(
            spec=spec,
            evaluation=synthetic_evaluation(flat, devices),
            onnx_path=onnx_path,
            fidelity=int(flat.get("recovery.steps", 0)),
            wall_s=time.perf_counter() - start,
        )

    def structural_metrics(self, spec: CompressionSpec, devices: Sequence[str]) -> Any:
        """The synthetic metrics minus accuracy; ``PE_TEST_LOG`` lines are not written (a
        costing is no evaluation)."""
        from paretoedge.search._cheap_metrics import StructuralMetrics

        return StructuralMetrics.of(synthetic_evaluation(spec.to_flat(), devices))

    def score_onnx(self, onnx_path: Path, devices: Sequence[str]) -> dict[str, DeviceMetrics]:
        flat = json.loads(onnx_path.read_text())
        return dict(synthetic_evaluation(flat, devices).devices)

    def test_accuracy(self, onnx_path: Path) -> float:
        flat = json.loads(onnx_path.read_text())
        return synthetic_evaluation(flat, []).accuracy - 0.01


def synthetic_config(**over: Any) -> StudyConfig:
    from paretoedge.search import parse_config

    doc: dict[str, Any] = {
        "name": "synthetic",
        "model": "tiny-bert",
        "task": "sentiment",
        "space": {
            "prune.sparsity": {"low": 0.0, "high": 0.6, "step": 0.2},
            "ffn.keep": [1.0, 0.5],
            "quant.bits": [32, 8, 4],
            "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
        },
        "objectives": ["accuracy", "latency_ms", "size_bytes"],
        "devices": ["dev-a", "dev-b"],
        "constraints": ["accuracy >= 0.5"],
        "sampler": {"name": "nsga2", "options": {"population_size": 4}},
        "budget": {"trials": 8},
        "seed": 3,
    }
    doc.update(over)
    return parse_config(doc, check_names=False)


def twin_trials(study: Any) -> int:
    """Trials that reused a complete twin's stored result instead of being evaluated (the
    controller does not evaluate one spec twice): evaluations = trials - twins."""
    from paretoedge.search import TWIN_ATTR

    return sum(TWIN_ATTR in t.user_attrs for t in study.get_trials())


def chosen_completely(space: Any, params: Any) -> bool:
    """Whether ``params`` holds every parameter ``suggest`` chooses for them (the active
    ones, ``when`` conditions followed in order): False for a trial killed while its
    parameters were being sampled."""
    values: dict[str, Any] = {}
    for p in space:
        if not p.active(values):
            continue
        if p.key not in params:
            return False
        values[p.key] = params[p.key]
    return True
