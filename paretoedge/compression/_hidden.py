"""Hidden-size pruning: the ``hidden`` transform (BERT-family models).

Every block adds its output to the residual stream, so one hidden channel runs through the
whole model: the three embedding tables, the embedding LayerNorm, every block's Q/K/V and FFN
input columns, its attention-output and FFN-output rows (and biases) and both LayerNorms,
and the pooler. Removing channel ``c`` removes it from all of them at once, so shapes really
shrink everywhere, including the embeddings (half of MiniLM's parameters, which head and FFN
pruning cannot reach). Attention heads keep their width (Q/K/V lose input columns only).

A channel's importance is the sum, over every matrix it touches, of the squared L2 norm of
its row/column there, each matrix's term normalised by the matrix's mean over channels (so
the large embedding table does not drown the rest), plus the LayerNorm gains' squares,
normalised the same way. The LayerNorms then normalise over fewer channels, which changes
their output: the ``recovery`` distillation (hidden-state matching switched off, the widths
differ) brings the accuracy back.

The model's ``config.hidden_size`` becomes the kept width; the structure file of
:func:`~paretoedge.compression.save_compressed` records the original width so the model can
be rebuilt (BERT derives its head size from ``hidden_size``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from paretoedge.compression._transform import Step, register_transform
from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from paretoedge.compression._context import CompressContext

#: Config attribute holding the width the model was built with (before hidden pruning).
BUILT_HIDDEN_ATTR = "paretoedge_built_hidden_size"


@dataclass(frozen=True)
class HiddenConfig:
    """Fraction of the hidden (residual-stream) channels kept.

    Attributes:
        keep: In (0, 1]; at least one channel stays; 1 changes nothing.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"keep": 1.0}

    keep: float = 0.75

    def __post_init__(self) -> None:
        ok = (
            isinstance(self.keep, int | float)
            and not isinstance(self.keep, bool)
            and math.isfinite(self.keep)
            and 0 < self.keep <= 1
        )
        if not ok:
            raise ConfigError("hidden.keep", self.keep, "a number in (0, 1]")


def _check_family(model: Any, keep: Any) -> None:
    kind = getattr(model.config, "model_type", None)
    if kind != "bert":
        raise ConfigError(
            "hidden.keep", keep, f"1 (unset) for {kind} models: only BERT-family models supported"
        )


def _parts(model: Any) -> dict[str, list[str]]:
    """Module names by how they touch the hidden channels."""
    from paretoedge.compression import _arch

    _check_family(model, "set")
    emb = "bert.embeddings"
    tables = [f"{emb}.{t}" for t in ("word_embeddings", "position_embeddings")]
    if model.bert.embeddings.token_type_embeddings is not None:
        tables.append(f"{emb}.token_type_embeddings")
    reads, writes, norms = [], [], [f"{emb}.LayerNorm"]
    for block in _arch.blocks(model):
        reads += [block.query, block.key, block.value, block.ffn_in]
        writes += [block.out, block.ffn_out]
        norms += [block.out.rsplit(".", 1)[0] + ".LayerNorm"]
        norms += [block.ffn_out.rsplit(".", 1)[0] + ".LayerNorm"]
    heads = []
    if getattr(model.bert, "pooler", None) is not None:
        reads.append("bert.pooler.dense")
        writes.append("bert.pooler.dense")
    heads.append("classifier")
    return {"tables": tables, "reads": reads + heads, "writes": writes, "norms": norms}


def _matrix(module: Any) -> Any:
    from torch import nn

    if not isinstance(module, nn.Linear | nn.Embedding):
        raise ConfigError(
            "hidden.keep",
            type(module).__name__,
            "a model whose hidden-size layers are plain Linear/Embedding (prune the hidden "
            "size before factorising, hashing or quantising)",
        )
    return module.weight.detach()


def channel_importance(model: Any) -> torch.Tensor:
    """Importance of every hidden channel (see the module docstring)."""
    import torch

    parts = _parts(model)
    terms = []
    for name in parts["tables"] + parts["reads"]:
        w = _matrix(model.get_submodule(name))
        # an Embedding's [V, H] and a reading Linear's [out, H]: channel = column
        terms.append(w.pow(2).sum(0))
    for name in parts["writes"]:
        w = _matrix(model.get_submodule(name))
        terms.append(w.pow(2).sum(1))  # a writing Linear's [H, in]: channel = row
    for name in parts["norms"]:
        terms.append(model.get_submodule(name).weight.detach().pow(2))
    return torch.stack([t / t.mean().clamp_min(1e-12) for t in terms]).sum(0)


def shrink_hidden(model: Any, keep: torch.Tensor) -> None:
    """Keep the hidden channels ``keep`` (sorted indices) everywhere (in place)."""
    import torch
    from torch import nn

    parts = _parts(model)
    n = int(keep.numel())
    with torch.no_grad():
        for name in parts["tables"]:
            old = model.get_submodule(name)
            table = nn.Embedding(old.num_embeddings, n, padding_idx=old.padding_idx)
            table.weight.copy_(old.weight[:, keep])
            model.set_submodule(name, table.train(old.training))
        reads, writes = set(parts["reads"]), set(parts["writes"])
        for name in sorted(reads | writes):
            old = model.get_submodule(name)
            w = old.weight
            if name in reads:
                w = w[:, keep]
            bias = old.bias
            if name in writes:
                w = w[keep]
                bias = bias[keep] if bias is not None else None
            linear = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
            linear.weight.copy_(w)
            if bias is not None:
                linear.bias.copy_(bias)
            model.set_submodule(name, linear.train(old.training))
        for name in parts["norms"]:
            old = model.get_submodule(name)
            norm = nn.LayerNorm(n, eps=old.eps)
            norm.weight.copy_(old.weight[keep])
            norm.bias.copy_(old.bias[keep])
            model.set_submodule(name, norm.train(old.training))
    if not hasattr(model.config, BUILT_HIDDEN_ATTR):
        setattr(model.config, BUILT_HIDDEN_ATTR, int(model.config.hidden_size))
    model.config.hidden_size = n


def prune_hidden(model: Any, config: HiddenConfig) -> int:
    """Remove the least important hidden channels; returns the new hidden size."""
    import torch

    _check_family(model, config.keep)
    width = int(model.config.hidden_size)
    n_keep = max(1, int(round(config.keep * width)))
    if n_keep == width:
        return width
    score = channel_importance(model)
    keep = torch.sort(torch.argsort(score, descending=True, stable=True)[:n_keep]).values
    shrink_hidden(model, keep)
    return n_keep


def run_hidden(ctx: CompressContext, config: HiddenConfig) -> bool:
    """The ``hidden`` step (keep 1 changes nothing)."""
    width = int(ctx.model.config.hidden_size)
    return prune_hidden(ctx.model, config) != width


register_transform(
    "hidden",
    HiddenConfig,
    Step("hidden", order=250, handler="paretoedge.compression._hidden:run_hidden"),
)
