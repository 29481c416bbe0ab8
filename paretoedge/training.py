"""Training and evaluation: batching, accuracy, fine-tuning, distillation, cached teachers.

Everything here is deterministic for a given seed: the data order comes from
``random.Random(seed)`` and dropout from torch's CPU generator, seeded inside
``torch.random.fork_rng`` so the caller's RNG state is left as it was. Library code never
changes torch's global thread settings; the caller decides how many cores to use.

The fine-tuned teacher of a (model, task, seed, epochs) is built once by
:func:`get_teacher` and cached under ``get_settings().teacher_cache``. The cache entry is
written to a temporary directory and renamed into place, and a file lock serialises
processes building the same entry, so concurrent or killed runs never leave a half-written
teacher behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from paretoedge.compression._distill import DistillConfig
    from paretoedge.tasks import Example

log = logging.getLogger(__name__)

Batch = dict[str, "torch.Tensor"]
StepCallback = Callable[["PreTrainedModel"], None]

#: Hyper-parameters of the cached teachers (part of the cache key).
TEACHER_LR = 1e-4
TEACHER_BATCH_SIZE = 32
TEACHER_MAX_LENGTH = 64
_TEACHER_FORMAT = 1
_TEACHER_INFO = "paretoedge_teacher.json"


def _positive_int(field: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(field, value, "an integer >= 1")
    return value


def make_batches(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    batch_size: int,
    max_length: int = 64,
    shuffle: bool = False,
    seed: int = 0,
) -> list[Batch]:
    """Tokenise ``examples`` into padded batches.

    Each batch holds ``input_ids``, ``attention_mask``, ``token_type_ids`` (zeros when
    the tokenizer has none) and ``labels``, padded to the longest sequence of the batch
    and truncated to ``max_length`` tokens. With ``shuffle`` the order is a permutation
    seeded by ``seed``; otherwise it is the order of ``examples``.
    """
    import torch

    _positive_int("batch_size", batch_size)
    _positive_int("max_length", max_length)
    order = list(range(len(examples)))
    if shuffle:
        random.Random(seed).shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start : start + batch_size]]
        encoded = tokenizer(
            [e.text for e in chunk],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batch: Batch = {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "token_type_ids": encoded.get("token_type_ids", torch.zeros_like(encoded["input_ids"])),
            "labels": torch.tensor([e.label for e in chunk], dtype=torch.long),
        }
        batches.append(batch)
    return batches


def model_inputs(model: PreTrainedModel, batch: Batch) -> Batch:
    """The entries of ``batch`` that ``model``'s forward takes (no labels)."""
    keys = ["input_ids", "attention_mask"]
    if getattr(model.config, "model_type", "") != "distilbert":
        keys.append("token_type_ids")
    return {k: batch[k] for k in keys}


@contextlib.contextmanager
def _progress(enabled: bool, description: str, total: int) -> Iterator[Callable[..., None]]:
    """A Rich progress bar on stderr; yields ``advance(**fields)``."""
    if not enabled:
        yield lambda **_: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(**fields: Any) -> None:
            status = " ".join(f"{k} {v:.4f}" for k, v in fields.items())
            bar.update(task, advance=1, status=status)

        yield advance


@contextlib.contextmanager
def _mode(model: PreTrainedModel, training: bool) -> Iterator[None]:
    was_training = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    batch_size: int = 64,
    max_length: int = 64,
    progress: bool = False,
) -> float:
    """Accuracy of ``model`` on ``examples`` (argmax of the logits), in [0, 1].

    Runs in eval mode without gradients; the model's mode is restored afterwards.

    Raises:
        DataError: ``examples`` is empty.
    """
    import torch

    if not examples:
        raise DataError("no examples to evaluate on")
    batches = make_batches(tokenizer, examples, batch_size=batch_size, max_length=max_length)
    correct = 0
    with (
        _mode(model, False),
        torch.no_grad(),
        _progress(progress, "evaluate", len(batches)) as advance,
    ):
        for batch in batches:
            logits = model(**model_inputs(model, batch)).logits
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
            advance()
    return correct / len(examples)


def _schedule(optimizer: torch.optim.Optimizer, total: int, warmup: float) -> Any:
    import torch

    warm = max(1, int(total * warmup)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optimizer(model: PreTrainedModel, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    import torch

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


def _batch_stream(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    batch_size: int,
    max_length: int,
    seed: int,
) -> Iterator[Batch]:
    """Endless shuffled batches; epoch ``e`` is shuffled with seed ``seed + e``."""
    epoch = 0
    while True:
        yield from make_batches(
            tokenizer,
            examples,
            batch_size=batch_size,
            max_length=max_length,
            shuffle=True,
            seed=seed + epoch,
        )
        epoch += 1


def _check_lr(lr: Any) -> float:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ConfigError("lr", lr, "a number > 0")
    return float(lr)


def finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    epochs: float = 1.0,
    max_steps: int | None = None,
    lr: float = 5e-5,
    batch_size: int = 32,
    max_length: int = 64,
    seed: int = 0,
    weight_decay: float = 0.01,
    warmup: float = 0.1,
    after_step: StepCallback | None = None,
    progress: bool = False,
) -> PreTrainedModel:
    """Train ``model`` on ``examples`` with cross-entropy (in place; returns it in eval mode).

    AdamW with linear warm-up (``warmup`` of the steps) and linear decay, gradient norm
    clipped to 1. The number of steps is ``ceil(epochs * batches per epoch)``, capped by
    ``max_steps``. ``after_step(model)`` runs after every optimiser step (e.g. to re-apply
    pruning masks). Same arguments and seed give the same weights.

    Raises:
        ConfigError: a non-positive ``epochs``, ``lr``, ``batch_size`` or ``max_steps``.
        DataError: ``examples`` is empty.
    """
    import torch
    import torch.nn.functional as F

    if isinstance(epochs, bool) or not isinstance(epochs, int | float) or not epochs > 0:
        raise ConfigError("epochs", epochs, "a number > 0")
    lr = _check_lr(lr)
    _positive_int("batch_size", batch_size)
    if max_steps is not None:
        _positive_int("max_steps", max_steps)
    if not examples:
        raise DataError("no training examples")
    per_epoch = math.ceil(len(examples) / batch_size)
    total = math.ceil(epochs * per_epoch)
    if max_steps is not None:
        total = min(total, max_steps)

    stream = _batch_stream(
        tokenizer, examples, batch_size=batch_size, max_length=max_length, seed=seed
    )
    with torch.random.fork_rng(devices=[]), _progress(progress, "fine-tune", total) as advance:
        torch.manual_seed(seed)
        optimizer = _optimizer(model, lr, weight_decay)
        scheduler = _schedule(optimizer, total, warmup)
        model.train()
        for _ in range(total):
            batch = next(stream)
            logits = model(**model_inputs(model, batch)).logits
            loss = F.cross_entropy(logits, batch["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            if after_step is not None:
                after_step(model)
            advance(loss=loss.item())
    model.eval()
    return model


def _default_layer_map(student: PreTrainedModel, teacher: PreTrainedModel) -> tuple[int, ...]:
    from paretoedge.compression._distill import TEACHER_LAYERS_ATTR, select_layers
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
        ce = F.cross_entropy(s_out.logits, batch["labels"])
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
    import torch

    from paretoedge.compression._distill import DistillConfig
    from paretoedge.models import num_layers

    config = config if config is not None else DistillConfig()
    total = config.steps if steps is None else steps
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ConfigError("distill.steps", total, "an integer >= 0")
    lr = _check_lr(config.lr if lr is None else lr)
    batch_size = _positive_int(
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
    stream = _batch_stream(
        tokenizer, examples, batch_size=batch_size, max_length=max_length, seed=seed
    )
    with (
        _mode(teacher, False),
        torch.random.fork_rng(devices=[]),
        _progress(progress, "distill", total) as advance,
    ):
        torch.manual_seed(seed)
        optimizer = _optimizer(student, lr, 0.01)
        scheduler = _schedule(optimizer, total, 0.1)
        student.train()
        for _ in range(total):
            batch = next(stream)
            loss, parts = distill_loss(student, teacher, batch, config=config, layer_map=mapping)
            optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                optimizer.step()
            scheduler.step()
            if after_step is not None:
                after_step(student)
            advance(loss=loss.item(), **parts)
    student.eval()
    return student


@dataclass(frozen=True)
class TeacherInfo:
    """What is recorded next to a cached teacher (``paretoedge_teacher.json``).

    Attributes:
        model, task, seed, epochs: What the teacher was fine-tuned from and how.
        path: The cache directory holding the model and its tokenizer.
        num_labels: Classes of its head.
        test_accuracy, validation_accuracy: Measured after fine-tuning.
        train_wall_s: Seconds the fine-tuning and evaluation took when it was built.
        reused: True when this call loaded the cache instead of fine-tuning.
    """

    model: str
    task: str
    seed: int
    epochs: float
    path: Path
    num_labels: int
    test_accuracy: float
    validation_accuracy: float
    train_wall_s: float
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``path`` as a string)."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "x"


def _fingerprint(name: str) -> str:
    """What identifies a model or task argument: the alias, or a file/directory's content."""
    path = Path(name).expanduser()
    if not path.exists() or name in ("minilm", "tiny-bert", "sentiment"):
        return name
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return f"{path.resolve()}:{digest.hexdigest()}"


def teacher_key(model: str, task: str, *, seed: int = 0, epochs: float = 1.0) -> str:
    """The cache directory name of a teacher: readable prefix plus a hash of everything
    that determines its weights (model and task content, seed, epochs, hyper-parameters)."""
    payload = json.dumps(
        [
            _TEACHER_FORMAT,
            _fingerprint(model),
            _fingerprint(task),
            seed,
            float(epochs),
            TEACHER_LR,
            TEACHER_BATCH_SIZE,
            TEACHER_MAX_LENGTH,
        ]
    )
    short = hashlib.sha256(payload.encode()).hexdigest()[:10]
    stem_model = _slug(Path(model).name if os.sep in model else model)
    stem_task = _slug(Path(task).stem if os.sep in task or "." in task else task)
    return f"{stem_model}--{stem_task}--seed{seed}--ep{float(epochs):g}--{short}"


def _read_info(path: Path, reused: bool) -> TeacherInfo | None:
    try:
        data = json.loads((path / _TEACHER_INFO).read_text())
        data["path"] = path
        data["reused"] = reused
        return TeacherInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def ensure_teacher(
    model: str,
    task: str,
    *,
    seed: int = 0,
    epochs: float = 1.0,
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, TeacherInfo]:
    """:func:`get_teacher` that also returns the recorded :class:`TeacherInfo`."""
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.settings import get_settings
    from paretoedge.tasks import load_task

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", seed, "an integer >= 0")
    if isinstance(epochs, bool) or not isinstance(epochs, int | float) or not epochs > 0:
        raise ConfigError("epochs", epochs, "a number > 0")
    data = load_task(task)
    root = get_settings().teacher_cache
    root.mkdir(parents=True, exist_ok=True)
    key = teacher_key(model, task, seed=seed, epochs=epochs)
    final = root / key

    with open(root / f"{key}.lock", "w") as lock:
        # Another process building the same teacher holds the lock; wait for it and reuse.
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = _read_info(final, reused=True) if final.is_dir() else None
        if info is None:
            if final.exists():
                log.warning("teacher cache %s is incomplete; rebuilding it", final)
                shutil.rmtree(final)
            _build_teacher(
                model, task, data, seed=seed, epochs=epochs, final=final, progress=progress
            )
            info = _read_info(final, reused=False)
            if info is None:
                raise DataError(f"{final}: teacher record could not be read back")
        else:
            log.info("reusing cached teacher %s", final)
    teacher = load_model(str(final), num_labels=info.num_labels, seed=seed)
    tokenizer = load_tokenizer(str(final))
    return teacher, tokenizer, info


def _build_teacher(
    model: str,
    task: str,
    data: Any,
    *,
    seed: int,
    epochs: float,
    final: Path,
    progress: bool,
) -> None:
    from paretoedge.models import load_model, load_tokenizer, quiet_transformers

    start = time.perf_counter()
    net = load_model(model, num_labels=data.num_labels, seed=seed)
    tokenizer = load_tokenizer(model)
    finetune(
        net,
        tokenizer,
        data.train,
        epochs=epochs,
        lr=TEACHER_LR,
        batch_size=TEACHER_BATCH_SIZE,
        max_length=TEACHER_MAX_LENGTH,
        seed=seed,
        progress=progress,
    )
    validation = evaluate(
        net, tokenizer, data.validation, max_length=TEACHER_MAX_LENGTH, progress=progress
    )
    test = evaluate(net, tokenizer, data.test, max_length=TEACHER_MAX_LENGTH, progress=progress)
    wall = time.perf_counter() - start
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        with quiet_transformers():
            net.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        record = {
            "model": model,
            "task": task,
            "seed": seed,
            "epochs": float(epochs),
            "num_labels": data.num_labels,
            "test_accuracy": test,
            "validation_accuracy": validation,
            "train_wall_s": round(wall, 2),
        }
        (tmp / _TEACHER_INFO).write_text(json.dumps(record, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared by design
        # Atomic on one filesystem: readers see either no entry or a complete one.
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("cached teacher %s: test accuracy %.4f (%.0f s)", final, test, wall)


def get_teacher(
    model: str,
    task: str,
    *,
    seed: int = 0,
    epochs: float = 1.0,
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The teacher ``model`` fine-tuned on ``task``, built once and then loaded from cache.

    The first call fine-tunes (lr :data:`TEACHER_LR`, batch :data:`TEACHER_BATCH_SIZE`)
    for ``epochs`` on the train split, measures validation and test accuracy, and saves
    model, tokenizer and ``paretoedge_teacher.json`` under
    ``get_settings().teacher_cache / teacher_key(...)``. Returns the model in eval mode.

    Raises:
        UnknownNameError, ConfigError, DataError: from the model, task or arguments.
    """
    teacher, tokenizer, _ = ensure_teacher(model, task, seed=seed, epochs=epochs, progress=progress)
    return teacher, tokenizer


def teacher_info(
    model: str, task: str, *, seed: int = 0, epochs: float = 1.0
) -> TeacherInfo | None:
    """The record of a cached teacher, or None if it has not been built."""
    from paretoedge.settings import get_settings

    path = get_settings().teacher_cache / teacher_key(model, task, seed=seed, epochs=epochs)
    return _read_info(path, reused=True) if path.is_dir() else None


__all__ = [
    "TeacherInfo",
    "distill",
    "distill_loss",
    "ensure_teacher",
    "evaluate",
    "finetune",
    "get_teacher",
    "make_batches",
    "model_inputs",
    "teacher_info",
    "teacher_key",
]
