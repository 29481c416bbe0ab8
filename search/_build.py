"""Building a candidate: the study's teacher compressed by a spec, one way everywhere.

Why one service: the search evaluates a candidate, ``add-device`` rebuilds one whose ONNX
file is gone, and ``export``/``verify`` rebuild a stored one to write it for a device. They
must produce the *same* model for the same study config and spec, or an exported model is
not the one the front reported. Every one of them goes through
:class:`CandidateBuilder` (or :func:`build_candidate` for a single build): the task with the
study's data limits, the cached fine-tuned teacher (:func:`paretoedge.teachers.get_teacher`,
in eval mode), ``torch.manual_seed(seed)``, then
:func:`paretoedge.compression.compress` with the study's seed (an empty spec is the
teacher itself).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paretoedge.compression import CompressionPrefix, CompressionSpec, StagedCompression
    from paretoedge.search._config import StudyConfig
    from paretoedge.tasks import Example, TaskData


def _limit(examples: tuple[Example, ...], n: int | None) -> tuple[Example, ...]:
    return examples if n is None else examples[:n]


@dataclass(frozen=True)
class BuiltCandidate:
    """A candidate's model, ready to evaluate or export.

    Attributes:
        model: The compressed model in eval mode (the builder's teacher itself for an empty
            spec: read it, do not change it).
        tokenizer: The teacher's tokenizer.
        task: The study's task with its data limits applied.
        spec: The spec it was built from.
    """

    model: Any
    tokenizer: Any
    task: TaskData
    spec: CompressionSpec


class CandidateBuilder:
    """Builds candidates of one study config; the task and the teacher are loaded once.

    Not thread-safe (one per worker process or thread, like an evaluator).

    Args:
        config: The study's validated config.
        progress: Show progress bars of the teacher fine-tune and of compression.
    """

    def __init__(self, config: StudyConfig, *, progress: bool = False) -> None:
        self.config = config
        self.progress = progress
        self._teacher: Any = None
        self._tokenizer: Any = None
        self._task: TaskData | None = None

    def prepare(self) -> None:
        """Load the task and the fine-tuned teacher (cached on disk after the first time)."""
        if self._teacher is not None:
            return
        from paretoedge.tasks import load_task
        from paretoedge.teachers import get_teacher

        cfg = self.config
        task = load_task(cfg.task)
        self._task = replace(
            task,
            train=_limit(task.train, cfg.data.train_limit),
            validation=_limit(task.validation, cfg.data.validation_limit),
            test=_limit(task.test, cfg.data.test_limit),
        )
        self._teacher, self._tokenizer = get_teacher(
            cfg.model, cfg.task, seed=cfg.seed, epochs=cfg.teacher_epochs, progress=self.progress
        )
        self._teacher.eval()

    @property
    def teacher(self) -> Any:
        """The fine-tuned teacher (eval mode)."""
        self.prepare()
        return self._teacher

    @property
    def tokenizer(self) -> Any:
        self.prepare()
        return self._tokenizer

    @property
    def task(self) -> TaskData:
        """The study's task with its data limits."""
        self.prepare()
        assert self._task is not None
        return self._task

    def build(self, spec: CompressionSpec, *, progress: bool | None = None) -> BuiltCandidate:
        """The teacher compressed by ``spec`` (a copy; the cached teacher stays intact).

        Raises:
            ParetoEdgeError: the spec cannot be applied to the model.
        """
        from paretoedge.compression import compress

        args = self._compress_args(progress)
        model = args["teacher"] if spec.is_empty else compress(args["teacher"], spec, **args).model
        model.eval()
        return BuiltCandidate(model=model, tokenizer=self._tokenizer, task=self.task, spec=spec)

    def stage(self, spec: CompressionSpec) -> StagedCompression:
        """``spec`` compressed up to its recovery step, which then runs in segments (early
        stopping's rungs); finished at its full budget it is the model :meth:`build` gives,
        bit for bit on the CPU (:class:`~paretoedge.compression.StagedCompression`).

        Raises:
            ParetoEdgeError: the spec cannot be applied, or has no recovery steps.
        """
        from paretoedge.compression import StagedCompression

        args = self._compress_args(None)
        return StagedCompression(args["teacher"], spec, **args)

    def prefix(self, spec: CompressionSpec) -> CompressionPrefix:
        """``spec``'s architectural steps run once; :meth:`CompressionPrefix.finish` then
        gives :meth:`build`'s model of every spec that shares them, bit for bit on the CPU
        (the bit-width and sparsity variants of one architecture).

        Raises:
            ParetoEdgeError: the spec cannot be applied.
        """
        from paretoedge.compression import CompressionPrefix

        args = self._compress_args(False)
        return CompressionPrefix(args["teacher"], spec, **args)

    def _compress_args(self, progress: bool | None) -> dict[str, Any]:
        """What every build passes to the compression, after seeding torch as it always
        has (the teacher loaded first)."""
        import torch

        self.prepare()
        cfg = self.config
        torch.manual_seed(cfg.seed)
        return {
            "teacher": self._teacher,
            "tokenizer": self._tokenizer,
            "task": self.task,
            "seed": cfg.seed,
            "progress": self.progress if progress is None else progress,
        }


def build_candidate(
    config: StudyConfig, spec: CompressionSpec, *, progress: bool = False
) -> BuiltCandidate:
    """Build one candidate of ``config`` compressed by ``spec`` (see the module docstring).

    Use a :class:`CandidateBuilder` to build several (the teacher is loaded once).

    Raises:
        ParetoEdgeError: the spec cannot be applied, or the model or task is unknown.
    """
    return CandidateBuilder(config, progress=progress).build(spec)
