"""Knowledge distillation: the ``distill`` transform, the training loop, and ``recovery``.

A student keeps ``k`` of the teacher's transformer blocks (copied with their weights, so
it starts close to the teacher) and is trained by :func:`distill` on the teacher's soft
targets (KL with a temperature), the hard labels, the hidden states and the attention maps
of the teacher layers it was built from. The same loop is the ``recovery`` step that every
other transform relies on (distillation from the uncompressed teacher, masks and
quantisers kept), so it lives here beside its config rather than in
:mod:`paretoedge.training`, whose generic helpers it uses (one-way: training imports
nothing of compression).

:class:`DistillConfig` is validated on construction; the one check that needs the teacher
(``layers`` no deeper than the teacher) happens in :func:`make_student`, where the depth is
known, and names the same field ``distill.layers``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from paretoedge.compression._transform import Step, register_transform
from paretoedge.errors import ConfigError, DataError
from paretoedge.training import (
    batch_labels,
    batch_stream,
    check_lr,
    linear_schedule,
    make_optimizer,
    model_inputs,
    positive_int,
    progress_bar,
    train_mode,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from paretoedge.compression._config import RecoveryConfig
    from paretoedge.compression._context import CompressContext
    from paretoedge.tasks import Example
    from paretoedge.training import Batch, StepCallback

#: Config attribute in which a student records the teacher layer each of its layers came
#: from; :func:`distill` uses it as the default layer map.
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

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"layers": 10**9}

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


def _default_layer_map(student: PreTrainedModel, teacher: PreTrainedModel) -> tuple[int, ...]:
    from paretoedge.models import num_layers

    n_student, n_teacher = num_layers(student), num_layers(teacher)
    recorded = getattr(student.config, TEACHER_LAYERS_ATTR, None)
    if recorded and len(recorded) == n_student and all(0 <= i < n_teacher for i in recorded):
        return tuple(int(i) for i in recorded)
    if n_student == n_teacher:
        return tuple(range(n_student))
    return select_layers(n_student, n_teacher)


def _masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the non-padding tokens ([B, S, H] states, [B, S] mask)."""
    weight = mask.unsqueeze(-1).to(student.dtype)
    squared = (student - teacher).pow(2) * weight
    return squared.sum() / (weight.sum() * student.shape[-1]).clamp_min(1.0)


def _attention_mse(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Squared error of attention rows ([B, H, S, S]) summed over keys, averaged over
    heads and non-padding query tokens; heads are averaged first if their counts differ."""
    if student.shape[1] != teacher.shape[1]:
        student = student.mean(1, keepdim=True)
        teacher = teacher.mean(1, keepdim=True)
    rows = (student - teacher).pow(2).sum(-1).mean(1)  # [B, S]
    weight = mask.to(rows.dtype)
    return (rows * weight).sum() / weight.sum().clamp_min(1.0)


def distill_loss(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    batch: Batch,
    *,
    config: DistillConfig,
    layer_map: Sequence[int],
) -> tuple[torch.Tensor, dict[str, float]]:
    """The distillation loss of one batch (see :func:`distill`) and its terms by name.

    The teacher runs without gradients; the student in whatever mode it is in. Terms with
    weight 0 are skipped (and not in the returned dict).
    """
    import torch
    import torch.nn.functional as F

    want_hidden = config.hidden_weight > 0
    want_attention = config.attention_weight > 0
    temperature = config.temperature
    kwargs = {"output_hidden_states": want_hidden, "output_attentions": want_attention}
    with torch.no_grad():
        t_out = teacher(**model_inputs(teacher, batch), **kwargs)
    s_out = student(**model_inputs(student, batch), **kwargs)
    mask = batch["attention_mask"]
    loss = torch.zeros(())
    parts: dict[str, float] = {}
    if config.soft_weight > 0:
        kl = F.kl_div(
            F.log_softmax(s_out.logits / temperature, dim=-1),
            F.softmax(t_out.logits / temperature, dim=-1),
            reduction="batchmean",
        ) * (temperature**2)
        loss = loss + config.soft_weight * kl
        parts["kl"] = kl.item()
    if config.hard_weight > 0:
        ce = F.cross_entropy(s_out.logits, batch_labels(batch, s_out.logits))
        loss = loss + config.hard_weight * ce
        parts["ce"] = ce.item()
    if want_hidden:
        hidden = torch.stack(
            [
                _masked_mse(s_out.hidden_states[i + 1], t_out.hidden_states[j + 1], mask)
                for i, j in enumerate(layer_map)
            ]
        ).mean()
        loss = loss + config.hidden_weight * hidden
        parts["hid"] = hidden.item()
    if want_attention:
        if not s_out.attentions or not t_out.attentions:
            raise ConfigError(
                "distill.attention_weight",
                config.attention_weight,
                "0 for models that do not output attention maps (use eager attention)",
            )
        attention = torch.stack(
            [
                _attention_mse(s_out.attentions[i], t_out.attentions[j], mask)
                for i, j in enumerate(layer_map)
            ]
        ).mean()
        loss = loss + config.attention_weight * attention
        parts["att"] = attention.item()
    return loss, parts


def distill(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    steps: int | None = None,
    config: DistillConfig | None = None,
    layer_map: Sequence[int] | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    max_length: int = 64,
    seed: int = 0,
    after_step: StepCallback | None = None,
    progress: bool = False,
) -> PreTrainedModel:
    """Train ``student`` to imitate ``teacher`` on ``examples`` (in place; eval mode after).

    The loss is, with the weights of ``config``:
    ``soft·T²·KL(softmax(t/T) ‖ softmax(s/T)) + hard·CE(s, y)
    + hidden·mean_i MSE(h_s[i], h_t[map[i]]) + attention·mean_i MSE(A_s[i], A_t[map[i]])``
    where ``map`` pairs student block ``i`` with teacher block ``layer_map[i]``. Terms with
    weight 0 are not computed. The teacher runs in eval mode without gradients.

    Args:
        steps, lr, batch_size: Override ``config.steps``/``lr``/``batch_size``.
        config: Loss weights, temperature and defaults; ``DistillConfig()`` if omitted.
        layer_map: Teacher block index for each student block. Default: the indices
            :func:`~paretoedge.compression.make_student` recorded in the student's config,
            else the identity (same depth), else evenly spaced teacher blocks.
        after_step: Called with the student after every optimiser step.

    Raises:
        ConfigError: a bad override, a layer map of the wrong length or out of range, or
            hidden-state transfer between models of different hidden sizes.
        DataError: ``examples`` is empty.
    """
    from paretoedge.models import num_layers

    config = config if config is not None else DistillConfig()
    total = config.steps if steps is None else steps
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ConfigError("distill.steps", total, "an integer >= 0")
    lr = check_lr(config.lr if lr is None else lr)
    batch_size = positive_int(
        "distill.batch_size", config.batch_size if batch_size is None else batch_size
    )
    if not examples:
        raise DataError("no training examples")
    n_student, n_teacher = num_layers(student), num_layers(teacher)
    mapping = tuple(layer_map) if layer_map is not None else _default_layer_map(student, teacher)
    if len(mapping) != n_student or not all(
        isinstance(i, int) and 0 <= i < n_teacher for i in mapping
    ):
        raise ConfigError(
            "distill.layer_map",
            mapping,
            f"{n_student} teacher layer indices in 0..{n_teacher - 1}",
        )
    if config.hidden_weight > 0 and student.config.hidden_size != teacher.config.hidden_size:
        raise ConfigError(
            "distill.hidden_weight",
            config.hidden_weight,
            f"0 when hidden sizes differ (student {student.config.hidden_size}, "
            f"teacher {teacher.config.hidden_size})",
        )
    run = DistillRun(
        student,
        teacher,
        tokenizer,
        examples,
        total=total,
        config=config,
        layer_map=mapping,
        lr=lr,
        batch_size=batch_size,
        max_length=max_length,
        seed=seed,
        after_step=after_step,
        progress=progress,
    )
    run.run_to(total)
    return student


class DistillRun:
    """The loop of :func:`distill`, run in segments and checkpointed between them.

    Why: multi-fidelity search measures a candidate after a few recovery steps and goes on
    training only if it is promising. Continuing the same run (same optimiser moments, the
    learning-rate schedule of the *whole* budget, the next batches, the dropout generator
    where it stopped) makes ``run_to(a); run_to(b)`` give bit for bit the weights of one
    uninterrupted ``run_to(b)`` on the same device, and so of :func:`distill` with
    ``steps=total``. A model measured at step ``a`` is the run's state at ``a`` under the
    full schedule, which has not decayed yet; it is not a model trained with an ``a``-step
    schedule.

    :meth:`state_dict` holds everything the continuation needs (student weights, optimiser,
    scheduler, torch's CPU generator, steps done); :meth:`load_state_dict` restores it on a
    fresh run of the same student structure, e.g. in another process. Dropout is seeded on
    the CPU generator only, as in :func:`distill`: on an accelerator neither run is
    reproducible.

    Arguments are those of :func:`distill`, checked there; ``total`` is the length of the
    schedule. The teacher is left unchanged; the student is trained in place.
    """

    def __init__(
        self,
        student: PreTrainedModel,
        teacher: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        examples: Sequence[Example],
        *,
        total: int,
        config: DistillConfig,
        layer_map: Sequence[int],
        lr: float,
        batch_size: int,
        max_length: int = 64,
        seed: int = 0,
        after_step: StepCallback | None = None,
        progress: bool = False,
    ) -> None:
        import torch

        self.student, self.teacher = student, teacher
        self.total = total
        self._config, self._map = config, tuple(layer_map)
        self._tokenizer, self._examples = tokenizer, examples
        self._batch_size, self._max_length, self._seed = batch_size, max_length, seed
        self._after_step, self._progress = after_step, progress
        self.optimizer = make_optimizer(student, lr, 0.01)
        self.scheduler = linear_schedule(self.optimizer, total, 0.1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._rng = torch.get_rng_state()
        self.done = 0
        self._stream = self._batches(0)

    def _batches(self, start: int) -> Iterator[Batch]:
        return batch_stream(
            self._tokenizer,
            self._examples,
            batch_size=self._batch_size,
            max_length=self._max_length,
            seed=self._seed,
            start=start,
        )

    def run_to(self, step: int) -> None:
        """Train until ``step`` optimiser steps are done in all (eval mode afterwards).

        Raises:
            ConfigError: ``step`` is below the steps done or above ``total``.
        """
        import torch

        if (
            isinstance(step, bool)
            or not isinstance(step, int)
            or not self.done <= step <= self.total
        ):
            raise ConfigError("step", step, f"an integer in {self.done}..{self.total}")
        student = self.student
        with (
            train_mode(self.teacher, False),
            torch.random.fork_rng(devices=[]),
            progress_bar(self._progress, "distill", step - self.done) as advance,
        ):
            torch.set_rng_state(self._rng)
            student.train()
            for _ in range(self.done, step):
                batch = next(self._stream)
                loss, parts = distill_loss(
                    student, self.teacher, batch, config=self._config, layer_map=self._map
                )
                self.optimizer.zero_grad(set_to_none=True)
                if loss.requires_grad:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                    self.optimizer.step()
                self.scheduler.step()
                if self._after_step is not None:
                    self._after_step(student)
                self.done += 1
                advance(loss=loss.item(), **parts)
            self._rng = torch.get_rng_state()
        student.eval()

    def state_dict(self) -> dict[str, Any]:
        """What continuing needs: tensors and plain values (``torch.load`` reads it back
        with ``weights_only=True``), copied, so training on does not change it."""
        return {
            "done": self.done,
            "total": self.total,
            "student": {k: v.detach().clone() for k, v in self.student.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict(),
            "rng": self._rng.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` of a run of the same student structure.

        Raises:
            ConfigError: the state belongs to a run of another length.
        """
        if int(state["total"]) != self.total:
            raise ConfigError("total", state["total"], f"{self.total} (this run's length)")
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._rng = state["rng"].clone()
        self.done = int(state["done"])
        self._stream = self._batches(self.done)


def check_distill(ctx: CompressContext, config: DistillConfig) -> None:
    """Training the student needs data."""
    if config.steps > 0:
        ctx.need_data("distill.steps", config.steps)


def run_distill(ctx: CompressContext, config: DistillConfig) -> bool:
    """The ``distill`` step: replace the model by its trained shallower student."""
    ctx.model = apply_distill(
        ctx.model,
        config,
        tokenizer=ctx.tokenizer,
        examples=ctx.train,
        seed=ctx.seed,
        progress=ctx.progress,
    )
    return True


def check_recovery(ctx: CompressContext, config: RecoveryConfig) -> None:
    """A recovery fine-tune needs data."""
    if config.steps > 0:
        ctx.need_data("recovery.steps", config.steps)


def run_recovery(ctx: CompressContext, config: RecoveryConfig) -> bool:
    """The ``recovery`` step: distil the teacher into the compressed model (in place).

    Masks and quantisers are parametrisations, so they stay applied while the weights move.
    Hidden states are matched only when the hidden sizes agree.
    """
    if config.steps == 0:
        return False
    recovery_run(ctx, config).run_to(config.steps)
    return True


def recovery_run(ctx: CompressContext, config: RecoveryConfig) -> DistillRun:
    """The recovery of ``ctx.model`` as a :class:`DistillRun` of ``config.steps`` steps,
    not started: :func:`run_recovery` runs it at once, a staged compression
    (:class:`~paretoedge.compression.StagedCompression`) in segments.

    Raises:
        DataError: the task has no training examples.
    """
    if not ctx.train:
        raise DataError("recovery needs training examples; the task's train split is empty")
    student, teacher = ctx.model, ctx.teacher
    hidden = 1.0 if student.config.hidden_size == teacher.config.hidden_size else 0.0
    # efficient attention (local/linear) has no n x n map to match: hidden states only
    maps = not any(getattr(m, "paretoedge_no_attention_maps", False) for m in student.modules())
    loss = DistillConfig(
        steps=config.steps,
        lr=config.lr,
        batch_size=config.batch_size,
        hidden_weight=hidden,
        attention_weight=DistillConfig.attention_weight if maps else 0.0,
    )
    return DistillRun(
        student,
        teacher,
        ctx.tokenizer,
        ctx.train,
        total=config.steps,
        config=loss,
        layer_map=_default_layer_map(student, teacher),
        lr=check_lr(loss.lr),
        batch_size=loss.batch_size,
        seed=ctx.seed,
        progress=ctx.progress,
    )


register_transform(
    "distill",
    DistillConfig,
    Step("distill", order=100, handler=run_distill),
    check=check_distill,
)
