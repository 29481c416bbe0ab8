"""The working state a transform handler receives (see :mod:`._transform`).

:func:`~paretoedge.compression.compress` builds one :class:`CompressContext` per call and
passes it to every step's handler, so a handler needs one argument besides its config and
a new transform never changes ``compress``'s signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from paretoedge.compression._config import CompressionSpec
    from paretoedge.tasks import Example, TaskData


@dataclass
class CompressContext:
    """What the steps of one :func:`~paretoedge.compression.compress` call share.

    Mutable on purpose: a handler transforms ``model`` in place or replaces it (distillation
    builds a new, shallower student). Handlers must not modify ``teacher``.

    Attributes:
        model: The model being compressed (a copy of the caller's).
        spec: The whole spec (a handler may look at other sections, e.g. quantisation-aware
            steps ask whether ``spec.quant`` is set).
        teacher: Teacher of distillation-based recovery (the caller's, or the input model).
        tokenizer, task: Data for the steps that train or calibrate (None when not given).
        seed: Seeds every random choice of every step.
        progress: Show progress bars for training steps.
        calibration: Tokenised batches overriding the task's for activation calibration.
    """

    model: Any
    spec: CompressionSpec
    teacher: Any
    tokenizer: Any = None
    task: TaskData | None = None
    seed: int = 0
    progress: bool = False
    calibration: Sequence[dict[str, torch.Tensor]] | None = None

    @property
    def train(self) -> Sequence[Example]:
        """The task's training examples (empty without a task)."""
        return self.task.train if self.task is not None else ()

    def need_data(self, field: str, value: Any) -> None:
        """Raise ConfigError naming ``field`` unless a task and a tokenizer were given."""
        if self.task is None or self.tokenizer is None:
            raise ConfigError(
                field, value, "a value that needs no data, or pass task= and tokenizer="
            )

    def batches(self, n_batches: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
        """The first ``n_batches * batch_size`` training examples, tokenised in order."""
        from paretoedge.training import make_batches

        return make_batches(
            self.tokenizer, self.train[: n_batches * batch_size], batch_size=batch_size
        )
