"""Turning a candidate (a :class:`~paretoedge.compression.CompressionSpec`) into measurements.

:class:`PipelineEvaluator` is the real pipeline: the candidate built by
:class:`~paretoedge.search._build.CandidateBuilder` (fine-tuned teacher cached once by
:func:`paretoedge.teachers.get_teacher` -> :func:`paretoedge.compression.compress` with the
study's recovery budget; export and add-device build through the same service) ->
validation accuracy -> ONNX export (once) -> the hardware model of every device. Accuracy
and size are measured once per candidate; device metrics are cheap queries of the hardware
models on the exported file, which is also how a device added later
is scored (:meth:`Evaluator.score_onnx`).

The :class:`Evaluator` interface is what the controller and the backends call, so a worker
process (local or a Ray actor) only needs a picklable evaluator factory.
"""

from __future__ import annotations

import abc
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.objectives import DeviceMetrics, Evaluation
from paretoedge.search._config import StudyConfig

if TYPE_CHECKING:
    from paretoedge.compression import CompressionPrefix, CompressionSpec, ModelStats
    from paretoedge.hardware_profiles import PreparedGraph
    from paretoedge.search._build import CandidateBuilder
    from paretoedge.search._cheap_metrics import StructuralMetrics
    from paretoedge.search._rung_checkpoint import RungCheckpoint
    from paretoedge.tasks import Example, TaskData

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CandidateResult:
    """Everything measured for one candidate.

    Attributes:
        spec: The candidate's compression spec.
        evaluation: Validation accuracy, size and per-device metrics.
        onnx_path: The exported model (``None`` when the evaluator does not export).
        fidelity: Recovery steps the candidate was trained for.
        wall_s: Seconds spent compressing, evaluating and exporting.
        pruned: Early stopping stopped it at ``fidelity`` steps (partial accuracy).
        twin_of: Trial number of the complete candidate with the same spec whose result
            this one reuses (the controller does not evaluate a configuration twice).
    """

    spec: CompressionSpec
    evaluation: Evaluation
    onnx_path: Path | None
    fidelity: int
    wall_s: float
    pruned: bool = False
    twin_of: int | None = None
    #: Recovery steps this call trained (None: not counted). With early stopping the real
    #: pipeline trains a candidate to ``fidelity`` once, or less when it continued a
    #: checkpoint of a killed evaluation.
    trained_steps: int | None = None

    @property
    def flat(self) -> dict[str, Any]:
        """The spec's dotted keys (for displays and tables)."""
        return self.spec.to_flat()


#: Called at each rung of a segmented recovery with (steps done, partial evaluation);
#: returning True stops the candidate there.
RungCallback = Callable[[int, Evaluation], bool]


class Evaluator(abc.ABC):
    """Measures candidates. Implementations may cache expensive state (the teacher).

    Not thread-safe: each worker process or thread builds its own evaluator.
    """

    @abc.abstractmethod
    def evaluate(
        self,
        spec: CompressionSpec,
        *,
        devices: Sequence[str],
        onnx_path: Path | None,
        rungs: Sequence[int] = (),
        on_rung: RungCallback | None = None,
        checkpoints: Path | None = None,
    ) -> CandidateResult:
        """Compress, measure and score ``spec`` on ``devices``.

        Args:
            spec: The candidate (may be empty: the uncompressed teacher).
            devices: Device names to predict.
            onnx_path: Where to export the model (parent directory exists), if exporting.
            rungs: Recovery step counts below the full budget at which to report a partial
                evaluation to ``on_rung`` (multi-fidelity early stopping); the candidate
                stops (``pruned=True``) at the first rung where ``on_rung`` returns True.
            checkpoints: A directory (the study's artifacts) where an evaluator that
                continues one recovery from rung to rung may keep it between rungs, so a
                retry of a killed evaluation of the same spec continues from its last rung
                (:mod:`paretoedge.search._rung_checkpoint`); nothing is left there once
                this call returns. None: keep nothing on disk.

        Raises:
            ParetoEdgeError: The candidate cannot be built (it fails that trial only).
        """

    @abc.abstractmethod
    def score_onnx(self, onnx_path: Path, devices: Sequence[str]) -> dict[str, DeviceMetrics]:
        """Device metrics of an exported candidate (used by ``add-device``)."""

    def test_accuracy(self, onnx_path: Path) -> float | None:
        """Test-split accuracy of an exported candidate, or None if not supported."""
        return None

    def rebuild_onnx(self, spec: CompressionSpec, onnx_path: Path) -> bool:
        """Rebuild the trained candidate of ``spec`` and export it to ``onnx_path``, measuring
        nothing (``add-device`` when a candidate's stored file is gone: its accuracy is
        stored already). Returns False when this evaluator cannot, and ``add-device`` then
        evaluates the candidate again and keeps only its device metrics.

        Raises:
            ParetoEdgeError: The candidate cannot be built.
        """
        return False

    def structural_metrics(
        self, spec: CompressionSpec, devices: Sequence[str]
    ) -> StructuralMetrics | None:
        """Size and every device's metrics of ``spec`` from its structure, without training
        (see :mod:`paretoedge.search._cheap_metrics`), or None when this evaluator cannot
        cost a candidate without evaluating it (the controller then screens nothing).

        Raises:
            ParetoEdgeError: The candidate cannot be built.
        """
        return None


#: Builds the evaluator of a study (a picklable callable, so worker processes build their own).
EvaluatorFactory = Callable[[StudyConfig], Evaluator]


def predict_devices(
    onnx_path: Path, devices: Sequence[str], *, exits: bool = True
) -> dict[str, DeviceMetrics]:
    """Run the hardware model of each device on an exported file (prepared once).

    An early-exit export (a ``<stem>.exits.json`` beside it) is scored by its expected
    latency over the exit distribution (:mod:`paretoedge.search._exits`) unless ``exits``
    is False.
    """
    from paretoedge.hardware_profiles import predict_many
    from paretoedge.search._exits import rescore_from_sidecar, sidecar_path

    if exits and sidecar_path(Path(onnx_path)).is_file():
        return rescore_from_sidecar(Path(onnx_path), devices)

    if not devices:
        return {}
    return {d: DeviceMetrics.from_object(p) for d, p in predict_many(onnx_path, devices).items()}


class PipelineEvaluator(Evaluator):
    """The real pipeline for one study configuration (see the module docstring)."""

    #: Exported graphs kept for costing variants of their architecture (each holds the
    #: model's weights; a screening pool is costed grouped by architecture).
    GRAPHS_KEPT = 4
    #: Compression prefixes kept for building variants of their architecture (each holds
    #: a model).
    PREFIXES_KEPT = 2

    def __init__(
        self,
        config: StudyConfig,
        *,
        progress: bool = False,
        builder: CandidateBuilder | None = None,
    ) -> None:
        from paretoedge.search._build import CandidateBuilder

        self.config = config
        self.progress = progress
        #: Builds every model this evaluator measures (shared with export and add-device:
        #: :mod:`paretoedge.search._build`); pass one to share a loaded teacher.
        self.builder = builder or CandidateBuilder(config, progress=progress)
        self._structural: dict[str, StructuralMetrics] = {}
        #: Prepared graphs by :func:`graph_key`, the most recently used last.
        self._graphs: OrderedDict[str, PreparedGraph] = OrderedDict()
        #: Compression prefixes by architecture, the most recently used last.
        self._prefixes: OrderedDict[str, CompressionPrefix] = OrderedDict()

    def prepare(self) -> None:
        """Load the task and the fine-tuned teacher (cached on disk after the first time)."""
        self.builder.prepare()

    def move_teacher(self, device: str) -> None:
        """Move the fine-tuned teacher, and so every candidate compressed from it, to the
        torch ``device`` (e.g. ``"cuda"``) for recovery and accuracy.

        ONNX export and the hardware models read CPU weights, so evaluate with
        ``onnx_path=None`` afterwards (``bench/record_space.py``'s accuracy phase records a
        space's accuracies on an accelerator this way, and its structures' device metrics
        apart, on the CPU).
        """
        self.builder.teacher.to(device)

    @property
    def task(self) -> TaskData:
        return self.builder.task

    def evaluate(
        self,
        spec: CompressionSpec,
        *,
        devices: Sequence[str],
        onnx_path: Path | None,
        rungs: Sequence[int] = (),
        on_rung: RungCallback | None = None,
        checkpoints: Path | None = None,
    ) -> CandidateResult:
        """See :meth:`Evaluator.evaluate`. With rungs below the recovery budget the
        candidate is compressed once and one recovery run goes on from rung to rung
        (:meth:`CandidateBuilder.stage`), so a stopped candidate costs the steps of its
        furthest rung, and a completed one the steps of its budget: the same model as
        without rungs, bit for bit on the CPU. The accuracy reported at a rung is the run's
        state there (learning rate not yet decayed), not that of a shorter budget."""
        self.prepare()
        start = time.perf_counter()
        full = spec.recovery.steps if spec.recovery is not None else 0
        early = [r for r in sorted(set(rungs)) if 0 < r < full] if on_rung is not None else []
        if not early:
            built = self.builder.build(spec)
            ev = self._measure(built.model, spec, devices=devices, onnx_path=onnx_path)
            return CandidateResult(
                spec=spec,
                evaluation=ev,
                onnx_path=onnx_path,
                fidelity=int(full),
                wall_s=time.perf_counter() - start,
                trained_steps=int(full),
            )
        assert on_rung is not None
        from paretoedge.search._rung_checkpoint import RungCheckpoint

        ckpt = (
            RungCheckpoint.of(checkpoints, spec, self.config.to_dict())
            if checkpoints is not None
            else None
        )
        try:
            return self._evaluate_rungs(
                spec,
                devices=devices,
                onnx_path=onnx_path,
                rungs=early,
                on_rung=on_rung,
                ckpt=ckpt,
                start=start,
            )
        except Exception:
            # a failed candidate is not retried: keep nothing (a killed process keeps its
            # checkpoint, and Ctrl-C queues the trial again, so both continue)
            if ckpt is not None:
                ckpt.remove()
            raise

    def _evaluate_rungs(
        self,
        spec: CompressionSpec,
        *,
        devices: Sequence[str],
        onnx_path: Path | None,
        rungs: Sequence[int],
        on_rung: RungCallback,
        ckpt: RungCheckpoint | None,
        start: float,
    ) -> CandidateResult:
        staged = self.builder.stage(spec)
        saved = ckpt.load() if ckpt is not None else None
        measured: dict[int, Evaluation] = {}
        if saved is not None:
            staged.load_state_dict(saved.state)
            measured = {r: e for r, e in saved.evaluations.items() if r <= staged.done}
            _log.info("continuing %s from recovery step %d", ckpt, staged.done)
        resumed_at = staged.done
        metrics: dict[str, DeviceMetrics] | None = None
        for r in rungs:
            part = measured.get(r)
            if part is None:
                staged.recover_to(r)
                # The structure (so latency and size) does not depend on the steps: the
                # device metrics come from the first rung's export.
                part = self._measure(
                    staged.result().model,
                    spec,
                    devices=devices,
                    onnx_path=onnx_path if metrics is None else None,
                    metrics=metrics,
                )
                measured[r] = part
                if ckpt is not None:
                    ckpt.save(staged.state_dict(), measured)
            metrics = dict(part.devices)
            if on_rung(r, part):
                if ckpt is not None:
                    ckpt.remove()
                return CandidateResult(
                    spec=spec,
                    evaluation=part,
                    onnx_path=onnx_path,
                    fidelity=r,
                    wall_s=time.perf_counter() - start,
                    pruned=True,
                    trained_steps=staged.done - resumed_at,
                )
        staged.recover_to(staged.total)
        ev = self._measure(
            staged.result(final=True).model, spec, devices=devices, onnx_path=onnx_path
        )
        if ckpt is not None:
            ckpt.remove()
        return CandidateResult(
            spec=spec,
            evaluation=ev,
            onnx_path=onnx_path,
            fidelity=staged.total,
            wall_s=time.perf_counter() - start,
            trained_steps=staged.done - resumed_at,
        )

    def _measure(
        self,
        model: Any,
        spec: CompressionSpec,
        *,
        devices: Sequence[str],
        onnx_path: Path | None,
        metrics: Mapping[str, DeviceMetrics] | None = None,
    ) -> Evaluation:
        """Accuracy and size of a built ``model``; device metrics from its export to
        ``onnx_path``, else ``metrics``."""
        from paretoedge.compression import export_onnx, model_stats
        from paretoedge.training import evaluate

        cfg = self.config
        tokenizer = self.builder.tokenizer
        stats = model_stats(model)
        if spec.exit is not None:
            from paretoedge.search._exits import measure_exit_candidate

            if onnx_path is not None:
                export_onnx(model, onnx_path, seq_len=cfg.seq_len)
            accuracy, exit_metrics = measure_exit_candidate(
                model,
                tokenizer,
                self.task.validation,
                seq_len=cfg.seq_len,
                onnx_path=onnx_path,
                devices=devices,
            )
            metrics = exit_metrics if exit_metrics is not None else metrics
        else:
            accuracy = evaluate(model, tokenizer, self.task.validation, max_length=cfg.seq_len)
            if onnx_path is not None:
                export_onnx(model, onnx_path, seq_len=cfg.seq_len)
                metrics = predict_devices(onnx_path, devices)
        return Evaluation(
            accuracy=float(accuracy),
            size_bytes=int(stats.stored_bytes),
            parameters=int(stats.parameters),
            sparsity=float(stats.sparsity),
            devices=dict(metrics or {}),
        )

    def structural_metrics(
        self, spec: CompressionSpec, devices: Sequence[str]
    ) -> StructuralMetrics:
        """Compress ``spec`` with no training step and run every device's hardware model on
        its graph (the lowering cache makes a known structure a cost query only).

        A candidate whose graph was exported before for another candidate (a bit-width or
        sparsity variant of the same architecture: :func:`graph_key`) is costed on that
        graph with its own weight facts, without an export of its own. Memoised per
        structure and device for the life of this evaluator.
        """
        from paretoedge.compression import weight_facts
        from paretoedge.hardware_profiles import cost, lower_cached, resolve_profile
        from paretoedge.hardware_profiles import with_weight_facts as with_facts
        from paretoedge.search._cheap_metrics import (
            StructuralMetrics,
            graph_key,
            structural_key,
            untrained,
        )

        key = structural_key(spec)
        known = self._structural.get(key)
        missing = [d for d in devices if known is None or d not in known.devices]
        if known is not None and not missing:
            return replace(known, devices={d: known.devices[d] for d in devices})
        model, stats = self._build_untrained(untrained(spec))
        gkey = graph_key(spec, model, seq_len=self.config.seq_len)
        shared = self._graphs.get(gkey) if gkey is not None else None
        if shared is not None:
            self._graphs.move_to_end(gkey)  # type: ignore[arg-type]
            prepared = with_facts(shared, weight_facts(model, layers=stats.layers))
        else:
            prepared = self._export_prepared(model)
            if gkey is not None:
                self._graphs[gkey] = prepared
                while len(self._graphs) > self.GRAPHS_KEPT:
                    self._graphs.popitem(last=False)
        per_device = dict(known.devices) if known is not None else {}
        for d in missing:
            profile = resolve_profile(d)
            lowered, hit = lower_cached(prepared, profile)
            per_device[d] = DeviceMetrics.from_object(
                cost(prepared, lowered, profile, cache_hit=hit)
            )
        known = StructuralMetrics(
            size_bytes=int(stats.stored_bytes),
            parameters=int(stats.parameters),
            sparsity=float(stats.sparsity),
            devices=per_device,
        )
        self._structural[key] = known
        return replace(known, devices={d: per_device[d] for d in devices})

    def _build_untrained(self, spec: CompressionSpec) -> tuple[Any, ModelStats]:
        """``spec`` built with no training step, and its size, from its architecture's
        compression prefix when one was built before (:meth:`CandidateBuilder.prefix`: the
        same model, bit for bit, without compressing the teacher's architecture again)."""
        from paretoedge.compression import model_stats
        from paretoedge.search._cheap_metrics import architecture_key

        if spec.is_empty or self.PREFIXES_KEPT < 1:
            model = self.builder.build(spec, progress=False).model
            return model, model_stats(model)
        key = architecture_key(spec)
        prefix = self._prefixes.get(key)
        if prefix is None or not prefix.shares(spec):
            prefix = self.builder.prefix(spec)
            self._prefixes[key] = prefix
            while len(self._prefixes) > self.PREFIXES_KEPT:
                self._prefixes.popitem(last=False)
        self._prefixes.move_to_end(key)
        result = prefix.finish(spec)
        result.model.eval()
        return result.model, result.stats

    def _export_prepared(self, model: Any) -> PreparedGraph:
        import tempfile

        from paretoedge.compression import export_onnx
        from paretoedge.hardware_profiles import prepare

        with tempfile.TemporaryDirectory(prefix="pe-structure-") as tmp:
            path = Path(tmp) / "structure.onnx"
            export_onnx(model, path, seq_len=self.config.seq_len)
            return prepare(path)

    def score_onnx(self, onnx_path: Path, devices: Sequence[str]) -> dict[str, DeviceMetrics]:
        return predict_devices(onnx_path, devices)

    def rebuild_onnx(self, spec: CompressionSpec, onnx_path: Path) -> bool:
        """Compress and recover ``spec`` (deterministic for the study's seed) and export it;
        no accuracy is measured. An early-exit candidate's export carries its measured exit
        distribution, which needs the validation pass: False for those."""
        from paretoedge.compression import export_onnx

        if spec.exit is not None:
            return False
        built = self.builder.build(spec)
        export_onnx(built.model, onnx_path, seq_len=self.config.seq_len)
        return True

    def test_accuracy(self, onnx_path: Path) -> float:
        """Accuracy on the (limited) test split, run by onnxruntime on the exported file.

        Kept apart from the validation accuracy the search optimizes; the controller calls
        it for front members only. The exported graph has static shapes, so examples are
        padded to the study's ``seq_len`` and fed in the export's batch size.
        """
        return onnx_accuracy(onnx_path, self.builder.tokenizer, self.task.test, self.config.seq_len)


def onnx_accuracy(
    onnx_path: Path, tokenizer: Any, examples: Sequence[Example], seq_len: int
) -> float:
    """Accuracy of an exported classifier on ``examples`` (onnxruntime, CPU)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    if not examples:
        return float("nan")
    meta = {
        p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props
    }
    batch = int(meta.get("paretoedge.batch", "1"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    correct = 0
    for i in range(0, len(examples), batch):
        chunk = list(examples[i : i + batch])
        n = len(chunk)
        chunk += [chunk[-1]] * (batch - n)
        enc = tokenizer(
            [e.text for e in chunk],
            padding="max_length",
            truncation=True,
            max_length=seq_len,
            return_tensors="np",
        )
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in names}
        for k in names - feed.keys():
            feed[k] = np.zeros((batch, seq_len), dtype=np.int64)
        (logits,) = sess.run(["logits"], feed)[:1]
        pred = logits[:n].argmax(-1)
        correct += int(sum(int(p) == e.label for p, e in zip(pred, chunk[:n], strict=True)))
    return correct / len(examples)


def spec_key(flat: Mapping[str, Any]) -> str:
    """A canonical string for a flat spec (sorted JSON): the key of a table of measured
    candidates (``bench/``'s JSON files, which keep the dotted keys)."""
    import json

    return json.dumps({k: flat[k] for k in sorted(flat)}, sort_keys=True, default=str)


class LookupEvaluator(Evaluator):
    """Answers from a table of evaluations measured earlier by the real pipeline.

    For benchmarks of the search itself (sampler efficiency, controller overhead) on an
    enumerable space: every point is measured once with :class:`PipelineEvaluator`, then
    trials cost a dictionary lookup. Asking for a spec not in the table is a bug of the
    caller (KeyError).

    Args:
        table: Evaluations by :func:`spec_key` of the flat spec.
        key: The table key of a spec, where the table was recorded under another
            normalisation (e.g. a recording that stored a no-op transform as none);
            default ``spec_key(spec.to_flat())``.
    """

    def __init__(
        self,
        table: Mapping[str, Evaluation],
        *,
        key: Callable[[CompressionSpec], str] | None = None,
    ) -> None:
        self.table = dict(table)
        self._key = key or (lambda spec: spec_key(spec.to_flat()))

    def evaluate(
        self,
        spec: CompressionSpec,
        *,
        devices: Sequence[str],
        onnx_path: Path | None,
        rungs: Sequence[int] = (),
        on_rung: RungCallback | None = None,
        checkpoints: Path | None = None,
    ) -> CandidateResult:
        start = time.perf_counter()
        ev = self.table[self._key(spec)]
        ev = Evaluation(
            accuracy=ev.accuracy,
            size_bytes=ev.size_bytes,
            parameters=ev.parameters,
            sparsity=ev.sparsity,
            devices={d: ev.devices[d] for d in devices},
        )
        return CandidateResult(
            spec=spec,
            evaluation=ev,
            onnx_path=None,
            fidelity=spec.recovery.steps if spec.recovery is not None else 0,
            wall_s=time.perf_counter() - start,
        )

    def structural_metrics(
        self, spec: CompressionSpec, devices: Sequence[str]
    ) -> StructuralMetrics:
        """The table's size and device metrics (measured by the real pipeline, which gives
        the same structure with or without training)."""
        from paretoedge.search._cheap_metrics import StructuralMetrics

        ev = self.table[self._key(spec)]
        return StructuralMetrics(
            size_bytes=ev.size_bytes,
            parameters=ev.parameters,
            sparsity=ev.sparsity,
            devices={d: ev.devices[d] for d in devices},
        )

    def score_onnx(self, onnx_path: Path, devices: Sequence[str]) -> dict[str, DeviceMetrics]:
        raise NotImplementedError("LookupEvaluator keeps no artifacts")
