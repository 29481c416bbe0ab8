"""Early exit: classifiers after chosen encoder layers, confidence-thresholded inference.

:func:`attach_exits` adds one :class:`ExitHead` per exit layer (``model.paretoedge_exits``,
a ``ModuleDict`` keyed by the layer count), initialised from the model's pooler and
classifier. :func:`train_exits` trains only the heads, with the encoder frozen, by
distillation from the model's own final logits (plus the label loss), so the final exit
answers exactly as before. :func:`exit_inference` runs the exit policy: a sample leaves at
the first exit whose top softmax probability is >= the threshold; the final classifier
answers the rest. It returns the accuracy *with exits on* and the exit distribution that the
evaluator turns into an expected latency.

:class:`ExitPrefix` is the deployable graph of one exit: the embeddings and the first L
layers, every exit head up to L (a sample that reaches exit k has computed heads 1..k), and
their logits as outputs (``logits`` is exit k's). One ONNX file per prefix is what a runtime
loads to run the cascade; see :func:`paretoedge.compression._exit_export.export_exits`.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from paretoedge.compression import _arch
from paretoedge.compression._extra_config import ExitConfig
from paretoedge.errors import ConfigError, DataError

if TYPE_CHECKING:
    from paretoedge.compression._context import CompressContext

log = logging.getLogger(__name__)

KD_TEMPERATURE = 2.0


class ExitHead(nn.Module):
    """dense + tanh on the [CLS] state, then a linear classifier (BERT's pooler + head)."""

    def __init__(self, hidden: int, num_labels: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.dense(hidden_states[:, 0])))


def exit_heads(model: Any) -> nn.ModuleDict | None:
    heads = getattr(model, "paretoedge_exits", None)
    return heads if isinstance(heads, nn.ModuleDict) else None


def exit_layers(model: Any) -> tuple[int, ...]:
    heads = exit_heads(model)
    return tuple(sorted(int(k) for k in heads)) if heads is not None else ()


def _encoder(model: Any) -> nn.Module:
    if getattr(model.config, "model_type", None) != "bert":
        raise ConfigError("exit.layers", "model", "a BERT-family model (MiniLM, BERT)")
    return model.bert


def attach_exits(model: Any, config: ExitConfig) -> None:
    """Add the exit heads of ``config`` to ``model`` in place (initialised, not trained).

    Raises:
        ConfigError: an exit layer >= the model's depth (the final classifier is the last
            exit already) or a non-BERT model.
    """
    _encoder(model)
    depth = len(_arch.blocks(model))
    bad = [n for n in config.layers if n >= depth]
    if bad:
        raise ConfigError(
            "exit.layers",
            ",".join(map(str, config.layers)),
            f"layer counts in 1..{depth - 1} (the model has {depth} layers)",
        )
    hidden = int(model.config.hidden_size)
    labels = int(model.config.num_labels)
    heads = nn.ModuleDict()
    pooler = getattr(model.bert, "pooler", None)
    classifier = getattr(model, "classifier", None)
    for n in config.layers:
        head = ExitHead(hidden, labels)
        if pooler is not None and isinstance(classifier, nn.Linear):
            # weights only: the originals may carry activation quantisers as submodules
            with torch.no_grad():
                for dst, src in ((head.dense, pooler.dense), (head.classifier, classifier)):
                    dst.weight.copy_(src.weight)
                    dst.bias.copy_(src.bias)
        heads[str(n)] = head
    model.paretoedge_exits = heads
    model.paretoedge_exit_threshold = float(config.threshold)


def all_logits(model: Any, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Logits of every exit in order, then the final classifier's."""
    heads = exit_heads(model)
    out = model(**inputs, output_hidden_states=True)
    logits = []
    if heads is not None:
        for n in sorted(int(k) for k in heads):
            logits.append(heads[str(n)](out.hidden_states[n]))
    logits.append(out.logits)
    return logits


def train_exits(
    model: Any,
    batches: Sequence[dict[str, torch.Tensor]],
    config: ExitConfig,
    *,
    seed: int = 0,
) -> list[float]:
    """Train the exit heads for ``config.steps`` steps; returns the loss per step.

    The encoder and final classifier are frozen (their outputs are computed without
    gradients), so only the heads learn: KL to the final logits at temperature
    :data:`KD_TEMPERATURE` plus cross-entropy with the labels, averaged over exits.
    """
    from paretoedge.training import batch_labels, model_inputs

    heads = exit_heads(model)
    if heads is None or config.steps == 0:
        return []
    if not batches:
        raise DataError("exit training needs training examples; the train split is empty")
    rng = random.Random(seed)
    order = list(range(len(batches)))
    opt = torch.optim.AdamW(heads.parameters(), lr=config.lr)
    layers = exit_layers(model)
    losses: list[float] = []
    model.eval()
    heads.train()
    t = KD_TEMPERATURE
    for step in range(config.steps):
        if step % len(order) == 0:
            rng.shuffle(order)
        batch = batches[order[step % len(order)]]
        with torch.no_grad():
            out = model(**model_inputs(model, batch), output_hidden_states=True)
            soft = torch.softmax(out.logits / t, dim=-1)
        loss = torch.zeros(())
        for n in layers:
            s = heads[str(n)](out.hidden_states[n])
            kd = nn.functional.kl_div(
                torch.log_softmax(s / t, dim=-1), soft, reduction="batchmean"
            ) * (t * t)
            loss = loss + 0.5 * kd + 0.5 * nn.functional.cross_entropy(s, batch_labels(batch, s))
        loss = loss / len(layers)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    heads.eval()
    return losses


@dataclass(frozen=True)
class ExitOutcome:
    """What the exit policy did on a data set.

    Attributes:
        accuracy: Accuracy with exits on.
        layers: Exit layer counts, then the model's depth (the final classifier).
        fractions: Share of samples leaving at each entry of ``layers`` (sums to 1).
        threshold: The confidence threshold applied.
    """

    accuracy: float
    layers: tuple[int, ...]
    fractions: tuple[float, ...]
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "layers": list(self.layers),
            "fractions": list(self.fractions),
            "threshold": self.threshold,
        }


def decide(logits: Sequence[torch.Tensor], threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, exit index) per sample: the first exit with confidence >= threshold."""
    n = logits[0].shape[0]
    pred = torch.full((n,), -1, dtype=torch.long)
    where = torch.full((n,), len(logits) - 1, dtype=torch.long)
    for i, lg in enumerate(logits):
        conf, arg = torch.softmax(lg, dim=-1).max(dim=-1)
        leave = (pred < 0) & ((conf >= threshold) | (i == len(logits) - 1))
        pred = torch.where(leave, arg, pred)
        where = torch.where(leave, torch.full_like(where, i), where)
    return pred, where


def exit_inference(
    model: Any,
    batches: Sequence[dict[str, torch.Tensor]],
    threshold: float | None = None,
) -> ExitOutcome:
    """Run the exit policy over labelled ``batches`` (see :class:`ExitOutcome`)."""
    from paretoedge.training import batch_labels, model_inputs

    if not batches:
        raise DataError("no examples to evaluate on")
    th = float(threshold if threshold is not None else model.paretoedge_exit_threshold)
    layers = (*exit_layers(model), len(_arch.blocks(model)))
    counts = torch.zeros(len(layers))
    correct = total = 0
    model.eval()
    with torch.no_grad():
        for batch in batches:
            pred, where = decide(all_logits(model, model_inputs(model, batch)), th)
            correct += int((pred == batch_labels(batch, pred)).sum())
            total += int(pred.numel())
            counts += torch.bincount(where, minlength=len(layers)).to(counts.dtype)
    fractions = tuple(float(c) / total for c in counts)
    return ExitOutcome(correct / total, layers, fractions, th)


class ExitPrefix(nn.Module):
    """The graph a runtime runs up to one exit (module docstring).

    Attribute names mirror the full model (``bert``, ``paretoedge_exits``, ``classifier``)
    so exported weights keep the model's module names. Outputs: ``logits`` (this exit's),
    then the logits of the earlier exits in order.
    """

    def __init__(self, model: Any, upto: int) -> None:
        super().__init__()
        work: Any = copy.deepcopy(model)
        depth = len(_arch.blocks(work))
        bert: Any = _encoder(work)
        if upto < depth:
            bert.encoder.layer = bert.encoder.layer[:upto]
            bert.pooler = None
        self.bert = bert
        self.config = work.config
        heads = exit_heads(work)
        self.layers = tuple(n for n in exit_layers(work) if n <= upto)
        self.paretoedge_exits = nn.ModuleDict(
            {str(n): heads[str(n)] for n in self.layers} if heads is not None else {}
        )
        self.classifier = work.classifier if upto >= depth else None

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        out = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=True,
        )
        logits = [self.paretoedge_exits[str(n)](out.hidden_states[n]) for n in self.layers]
        if self.classifier is not None:
            logits.append(self.classifier(out.pooler_output))
        return (logits[-1], *logits[:-1])


def check_exit(ctx: CompressContext, config: ExitConfig) -> None:
    """Training the heads needs task batches."""
    if config.steps > 0:
        ctx.need_data("exit.steps", config.steps)


def run_exit(ctx: CompressContext, config: ExitConfig) -> bool:
    """The ``exit`` step: attach the heads and train them on shuffled training batches."""
    from paretoedge.training import make_batches

    attach_exits(ctx.model, config)
    if config.steps > 0:
        batches = make_batches(
            ctx.tokenizer, ctx.train, batch_size=config.batch_size, shuffle=True, seed=ctx.seed
        )
        train_exits(ctx.model, batches, config, seed=ctx.seed)
    return True
