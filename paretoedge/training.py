"""Training and evaluation: batching, accuracy, fine-tuning, and the loop helpers they share.

Everything here is deterministic for a given seed: the data order comes from
``random.Random(seed)`` and dropout from torch's CPU generator, seeded inside
``torch.random.fork_rng`` so the caller's RNG state is left as it was. Library code never
changes torch's global thread settings; the caller decides how many cores to use.

This module imports nothing of ``paretoedge.compression``: the distillation loop
(:func:`paretoedge.compression.distill`) lives beside its config and builds on the helpers
here (:func:`batch_stream`, :func:`make_optimizer`, :func:`linear_schedule`,
:func:`progress_bar`); the teacher cache is :mod:`paretoedge.teachers`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from paretoedge.tasks import Example

log = logging.getLogger(__name__)

Batch = dict[str, "torch.Tensor"]
StepCallback = Callable[["PreTrainedModel"], None]


def positive_int(field: str, value: Any) -> int:
    """``value`` if it is an integer >= 1, else ConfigError naming ``field``."""
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

    positive_int("batch_size", batch_size)
    positive_int("max_length", max_length)
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
    """The entries of ``batch`` that ``model``'s forward takes (no labels), on the device
    of ``model``'s weights (batches are built on the CPU; a no-op there)."""
    keys = ["input_ids", "attention_mask"]
    if getattr(model.config, "model_type", "") != "distilbert":
        keys.append("token_type_ids")
    device = next(model.parameters()).device
    return {k: batch[k].to(device) for k in keys}


def batch_labels(batch: Batch, like: torch.Tensor) -> torch.Tensor:
    """``batch``'s labels on the device of ``like`` (e.g. the logits they are scored with)."""
    return batch["labels"].to(like.device)


@contextlib.contextmanager
def progress_bar(enabled: bool, description: str, total: int) -> Iterator[Callable[..., None]]:
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
def train_mode(model: PreTrainedModel, training: bool) -> Iterator[None]:
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
        train_mode(model, False),
        torch.no_grad(),
        progress_bar(progress, "evaluate", len(batches)) as advance,
    ):
        for batch in batches:
            logits = model(**model_inputs(model, batch)).logits
            correct += int((logits.argmax(-1) == batch_labels(batch, logits)).sum())
            advance()
    return correct / len(examples)


def linear_schedule(optimizer: torch.optim.Optimizer, total: int, warmup: float) -> Any:
    """Linear warm-up over ``warmup`` of ``total`` steps, then linear decay to 0."""
    import torch

    warm = max(1, int(total * warmup)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model: PreTrainedModel, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; biases and LayerNorms get no weight decay."""
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


def batch_stream(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    batch_size: int,
    max_length: int,
    seed: int,
    start: int = 0,
) -> Iterator[Batch]:
    """Endless shuffled batches; epoch ``e`` is shuffled with seed ``seed + e``.

    ``start`` skips that many batches (whole epochs without tokenising them), so a
    continued training run reads the batches an uninterrupted one would have read.
    """
    positive_int("batch_size", batch_size)
    per_epoch = math.ceil(len(examples) / batch_size) if examples else 1
    epoch, skip = divmod(start, per_epoch)
    while True:
        batches = make_batches(
            tokenizer,
            examples,
            batch_size=batch_size,
            max_length=max_length,
            shuffle=True,
            seed=seed + epoch,
        )
        yield from batches[skip:]
        skip = 0
        epoch += 1


def check_lr(lr: Any) -> float:
    """``lr`` as a float if it is a number > 0, else ConfigError naming ``lr``."""
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
    lr = check_lr(lr)
    positive_int("batch_size", batch_size)
    if max_steps is not None:
        positive_int("max_steps", max_steps)
    if not examples:
        raise DataError("no training examples")
    per_epoch = math.ceil(len(examples) / batch_size)
    total = math.ceil(epochs * per_epoch)
    if max_steps is not None:
        total = min(total, max_steps)

    stream = batch_stream(
        tokenizer, examples, batch_size=batch_size, max_length=max_length, seed=seed
    )
    with torch.random.fork_rng(devices=[]), progress_bar(progress, "fine-tune", total) as advance:
        torch.manual_seed(seed)
        optimizer = make_optimizer(model, lr, weight_decay)
        scheduler = linear_schedule(optimizer, total, warmup)
        model.train()
        for _ in range(total):
            batch = next(stream)
            logits = model(**model_inputs(model, batch)).logits
            loss = F.cross_entropy(logits, batch_labels(batch, logits))
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


__all__ = [
    "Batch",
    "StepCallback",
    "batch_labels",
    "batch_stream",
    "check_lr",
    "evaluate",
    "finetune",
    "linear_schedule",
    "make_batches",
    "make_optimizer",
    "model_inputs",
    "positive_int",
    "progress_bar",
    "train_mode",
]
