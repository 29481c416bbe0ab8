"""Knowledge distillation into a shallower student.

A student keeps ``k`` of the teacher's transformer blocks (copied with their weights, so
it starts close to the teacher) and is trained by :func:`paretoedge.training.distill` on
the teacher's soft targets (KL with a temperature), the hard labels, the hidden states
and the attention maps of the teacher layers it was built from.

:class:`DistillConfig` is validated on construction; the one check that needs the teacher
(``layers`` no deeper than the teacher) happens in :func:`make_student`, where the depth is
known, and names the same field ``distill.layers``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from paretoedge.tasks import Example

#: Config attribute in which a student records the teacher layer each of its layers came
#: from; :func:`paretoedge.training.distill` uses it as the default layer map.
TEACHER_LAYERS_ATTR = "paretoedge_teacher_layers"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class DistillConfig:
    """How to distil a teacher into a shallower student.

    Attributes:
        layers: ``k`` (keep ``k`` evenly spaced teacher layers, first and last included;
            ``1`` keeps the first) or an explicit strictly increasing tuple of teacher layer
            indices (0-based). Checked against the teacher's depth when applied.
        steps: Optimiser steps of distillation training (0 = only drop layers).
        temperature: Softmax temperature of the soft-target KL term (> 0).
        soft_weight: Weight of KL(teacher ‖ student) on temperature-softened logits,
            scaled by temperature² as in Hinton et al.
        hard_weight: Weight of cross-entropy on the true labels.
        hidden_weight: Weight of the MSE between each student layer's output hidden states
            and those of the teacher layer it maps to (padding excluded).
        attention_weight: Weight of the MSE between attention maps (squared error summed
            over keys, averaged over query tokens and heads; heads are averaged first when
            the two models have different head counts, e.g. after head pruning).
        lr: Peak learning rate (AdamW, linear warm-up and decay).
        batch_size: Examples per step.
    """

    layers: int | tuple[int, ...] = 4
    steps: int = 300
    temperature: float = 2.0
    soft_weight: float = 1.0
    hard_weight: float = 0.5
    hidden_weight: float = 1.0
    attention_weight: float = 1.0
    lr: float = 1e-4
    batch_size: int = 32

    def __post_init__(self) -> None:
        layers = self.layers
        if isinstance(layers, list):
            layers = tuple(layers)
            object.__setattr__(self, "layers", layers)
        if isinstance(layers, tuple):
            if (
                not layers
                or not all(_is_int(i) and i >= 0 for i in layers)
                or any(b <= a for a, b in zip(layers, layers[1:], strict=False))
            ):
                raise ConfigError(
                    "distill.layers",
                    layers,
                    "an integer >= 1 or a non-empty, strictly increasing tuple of "
                    "teacher layer indices >= 0",
                )
        elif not _is_int(layers) or layers < 1:
            raise ConfigError("distill.layers", layers, "an integer >= 1 or a tuple of indices")
        if not _is_int(self.steps) or self.steps < 0:
            raise ConfigError("distill.steps", self.steps, "an integer >= 0")
        if not _is_number(self.temperature) or self.temperature <= 0:
            raise ConfigError("distill.temperature", self.temperature, "a number > 0")
        for name in ("soft_weight", "hard_weight", "hidden_weight", "attention_weight"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ConfigError(f"distill.{name}", value, "a number >= 0")
        if not _is_number(self.lr) or self.lr <= 0:
            raise ConfigError("distill.lr", self.lr, "a number > 0")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ConfigError("distill.batch_size", self.batch_size, "an integer >= 1")


def select_layers(layers: int | Sequence[int], depth: int) -> tuple[int, ...]:
    """The teacher layer indices a student keeps.

    Args:
        layers: ``k`` or explicit indices (see :attr:`DistillConfig.layers`).
        depth: The teacher's number of layers.

    Raises:
        ConfigError: ``distill.layers`` exceeds the teacher's depth or an index is out of
            range (the message gives the allowed range).
    """
    if _is_int(layers):
        k = int(layers)  # type: ignore[arg-type]
        if not 1 <= k <= depth:
            raise ConfigError("distill.layers", k, f"1..{depth} (the teacher has {depth} layers)")
        if k == 1:
            return (0,)
        # Evenly spaced, first and last kept; rounding half up keeps the choice symmetric.
        return tuple(int(math.floor(i * (depth - 1) / (k - 1) + 0.5)) for i in range(k))
    indices = tuple(layers)  # type: ignore[arg-type]
    bad = [i for i in indices if not _is_int(i) or not 0 <= i < depth]
    if not indices or bad or len(set(indices)) != len(indices):
        raise ConfigError(
            "distill.layers",
            indices,
            f"distinct teacher layer indices in 0..{depth - 1} (the teacher has {depth} layers)",
        )
    return indices


def make_student(teacher: PreTrainedModel, layers: int | Sequence[int]) -> PreTrainedModel:
    """A shallower copy of ``teacher`` keeping the chosen transformer blocks.

    Embeddings, pooler and classifier are copied; the kept blocks keep their weights and
    their order. The teacher is not modified. The student's config records the depth and,
    under :data:`TEACHER_LAYERS_ATTR`, the teacher index of each kept block.

    Raises:
        ConfigError: ``layers`` does not fit the teacher (see :func:`select_layers`), or
            the model is not a supported family.
    """
    import torch

    from paretoedge.models import encoder_layers, set_encoder_layers

    teacher_blocks = encoder_layers(teacher)
    depth = len(teacher_blocks)
    prior = getattr(teacher.config, TEACHER_LAYERS_ATTR, None)
    chosen = select_layers(layers, depth)
    student = copy.deepcopy(teacher)
    blocks = encoder_layers(student)
    set_encoder_layers(student, torch.nn.ModuleList([blocks[i] for i in chosen]))
    # A student of a student maps back to the original teacher's layers.
    origin = [prior[i] for i in chosen] if prior and len(prior) == depth else list(chosen)
    setattr(student.config, TEACHER_LAYERS_ATTR, origin)
    return student


def apply_distill(
    teacher: PreTrainedModel,
    config: DistillConfig,
    *,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    seed: int = 0,
    progress: bool = False,
) -> PreTrainedModel:
    """Build a student with :func:`make_student` and train it for ``config.steps`` steps.

    The layer map pairs the student's i-th block with the teacher block it was copied
    from. Returns the student in eval mode; the teacher is left unchanged.
    """
    from paretoedge.training import distill

    chosen = select_layers(config.layers, _depth(teacher))
    student = make_student(teacher, chosen)
    if config.steps > 0:
        distill(
            student,
            teacher,
            tokenizer,
            examples,
            steps=config.steps,
            config=config,
            layer_map=chosen,
            seed=seed,
            progress=progress,
        )
    student.eval()
    return student


def _depth(model: PreTrainedModel) -> int:
    from paretoedge.models import num_layers

    return num_layers(model)
