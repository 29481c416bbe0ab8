"""Pruning: unstructured magnitude masks, and structured removal of heads and FFN neurons.

Unstructured pruning leaves shapes alone and zeroes weights through a :class:`Mask`
parametrisation (it stays applied while the model is fine-tuned). Structured pruning
really shrinks the matrices: a removed head takes its rows of Q, K and V and its columns
of the attention output projection; a removed FFN neuron takes its row of the FFN input
and its column of the FFN output. The attention forward of BERT and DistilBERT in
transformers 5 infers the head count from the projection's width, and the new count is
written on the attention module, so the pruned model runs and exports as is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from paretoedge.compression import _arch
from paretoedge.compression._config import FFNConfig, HeadsConfig, PruneConfig
from paretoedge.compression._modules import Mask
from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from paretoedge.compression._context import CompressContext

log = logging.getLogger(__name__)

#: Batches of 16 training examples scoring heads by gradient.
GRADIENT_BATCHES = 4


def prune_targets(model: nn.Module) -> list[tuple[str, Any]]:
    """Linear layers of the encoder blocks (attention and FFN, low-rank factors included)."""
    out: list[tuple[str, Any]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and _arch.group_of(model, name) in ("attention", "ffn"):
            out.append((name, module))
    return out


def magnitude_prune(model: nn.Module, config: PruneConfig) -> float:
    """Mask the smallest-magnitude encoder weights; returns the sparsity reached.

    ``global`` scope ranks all target weights together; ``layer`` gives every Linear the
    same sparsity. The masks are parametrisations: they keep zeroing the weights during
    any later fine-tuning until :func:`~paretoedge.compression.bake` writes them in.
    """
    targets = prune_targets(model)
    if config.sparsity == 0 or not targets:
        return 0.0
    with torch.no_grad():
        if config.scope == "global":
            scores = torch.cat([m.weight.detach().abs().flatten() for _, m in targets])
            k = int(round(config.sparsity * scores.numel()))
            threshold = torch.kthvalue(scores, k).values if k > 0 else None
            masks = [
                (m.weight.detach().abs() > threshold).float()
                if threshold is not None
                else torch.ones_like(m.weight)
                for _, m in targets
            ]
        else:
            masks = []
            for _, m in targets:
                w = m.weight.detach().abs().flatten()
                k = int(round(config.sparsity * w.numel()))
                mask = torch.ones_like(w)
                if k > 0:
                    mask[torch.argsort(w, stable=True)[:k]] = 0.0
                masks.append(mask.view_as(m.weight))
    for (_, m), mask in zip(targets, masks, strict=True):
        parametrize.register_parametrization(m, "weight", Mask(mask))
    zeros = sum(int((mask == 0).sum()) for mask in masks)
    total = sum(mask.numel() for mask in masks)
    return zeros / total


def _shrink_linear(
    linear: Any, *, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> nn.Linear:
    if parametrize.is_parametrized(linear):
        raise ConfigError(
            "heads/ffn", "after prune/quant", "structured pruning before masks or quantisers"
        )
    w = linear.weight.detach()
    b = linear.bias.detach() if linear.bias is not None else None
    if rows is not None:
        w = w.index_select(0, rows)
        b = b.index_select(0, rows) if b is not None else None
    if cols is not None:
        w = w.index_select(1, cols)
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new.train(linear.training)


def head_importance_magnitude(model: nn.Module) -> list[torch.Tensor]:
    """Per block, the L2 norm of each head's Q/K/V rows and output-projection columns."""
    out = []
    for block in _arch.blocks(model):
        n, d = _arch.get_heads(model, block)
        total = torch.zeros(n)
        for name in (block.query, block.key, block.value):
            lin: Any = model.get_submodule(name)
            w = lin.weight.detach()
            total += w.view(n, d, -1).pow(2).sum(dim=(1, 2))
        out_proj: Any = model.get_submodule(block.out)
        wo = out_proj.weight.detach()
        total += wo.view(wo.shape[0], n, d).pow(2).sum(dim=(0, 2))
        out.append(total.sqrt())
    return out


def head_importance_gradient(
    model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]
) -> list[torch.Tensor]:
    """Per block, sum over batches of |d loss / d m_h| for a head mask m (all ones).

    The mask multiplies each head's context vectors right before the attention output
    projection (a forward pre-hook), which is where HF's old ``head_mask`` acted.
    """
    blocks = _arch.blocks(model)
    masks, handles = [], []
    for block in blocks:
        n, d = _arch.get_heads(model, block)
        mask = torch.ones(n, requires_grad=True)
        masks.append(mask)

        def hook(_m: nn.Module, args: tuple, mask: torch.Tensor = mask, n: int = n) -> tuple:
            x = args[0]
            shaped = x.view(*x.shape[:-1], n, -1) * mask.view(n, 1)
            return (shaped.view_as(x), *args[1:])

        handles.append(model.get_submodule(block.out).register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    scores = [torch.zeros(m.numel()) for m in masks]
    try:
        for batch in batches:
            loss = model(**batch).loss
            grads = torch.autograd.grad(loss, masks)
            for s, g in zip(scores, grads, strict=True):
                s += g.abs()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return scores


def prune_heads(
    model: nn.Module,
    config: HeadsConfig,
    batches: Sequence[dict[str, torch.Tensor]] | None = None,
) -> dict[int, list[int]]:
    """Remove the least important heads of every block; returns the kept head indices.

    Raises:
        ConfigError: ``criterion="gradient"`` without batches.
    """
    if config.criterion == "gradient":
        if not batches:
            raise ConfigError("heads.criterion", "gradient", "magnitude (no task data given)")
        scores = head_importance_gradient(model, batches)
    else:
        scores = head_importance_magnitude(model)
    kept: dict[int, list[int]] = {}
    for block, score in zip(_arch.blocks(model), scores, strict=True):
        n, d = _arch.get_heads(model, block)
        n_keep = max(1, int(round(config.keep * n)))
        keep = sorted(torch.argsort(score, descending=True, stable=True)[:n_keep].tolist())
        kept[block.index] = keep
        if n_keep == n:
            continue
        idx = torch.tensor([h * d + j for h in keep for j in range(d)])
        for name in (block.query, block.key, block.value):
            model.set_submodule(name, _shrink_linear(model.get_submodule(name), rows=idx))
        model.set_submodule(block.out, _shrink_linear(model.get_submodule(block.out), cols=idx))
        _arch.set_heads(model, block, n_keep)
    log.info("heads kept per layer: %s", kept)
    return kept


def prune_ffn(model: nn.Module, config: FFNConfig) -> dict[int, int]:
    """Remove the FFN neurons with the smallest ||w_in row|| * ||w_out column||.

    Returns the intermediate size of every block.
    """
    sizes: dict[int, int] = {}
    for block in _arch.blocks(model):
        w_in: Any = model.get_submodule(block.ffn_in)
        w_out: Any = model.get_submodule(block.ffn_out)
        inter = w_in.weight.shape[0]
        n_keep = max(1, int(round(config.keep * inter)))
        sizes[block.index] = n_keep
        if n_keep == inter:
            continue
        score = w_in.weight.detach().norm(dim=1) * w_out.weight.detach().norm(dim=0)
        idx = torch.sort(torch.argsort(score, descending=True, stable=True)[:n_keep]).values
        model.set_submodule(block.ffn_in, _shrink_linear(w_in, rows=idx))
        model.set_submodule(block.ffn_out, _shrink_linear(w_out, cols=idx))
    return sizes


def check_heads(ctx: CompressContext, config: HeadsConfig) -> None:
    """Gradient importance needs task batches."""
    if config.criterion == "gradient":
        ctx.need_data("heads.criterion", "gradient")


def run_heads(ctx: CompressContext, config: HeadsConfig) -> bool:
    """The ``heads`` step."""
    batches = ctx.batches(GRADIENT_BATCHES, 16) if config.criterion == "gradient" else None
    prune_heads(ctx.model, config, batches)
    return True


def run_ffn(ctx: CompressContext, config: FFNConfig) -> bool:
    """The ``ffn`` step."""
    prune_ffn(ctx.model, config)
    return True


def run_prune(ctx: CompressContext, config: PruneConfig) -> bool:
    """The ``prune`` step (masks stay applied until the final bake)."""
    magnitude_prune(ctx.model, config)
    return True
