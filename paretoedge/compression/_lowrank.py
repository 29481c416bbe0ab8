"""Low-rank factorisation by truncated SVD.

A Linear ``W`` (out x in) becomes ``up(down(x))`` with ``down = sqrt(S_r) V_r^T`` and
``up = U_r sqrt(S_r)`` (the bias stays on ``up``); the word-embedding matrix (V x H)
becomes an Embedding of width r followed by an r -> H Linear. The rank is fixed or the
smallest one holding ``energy`` of the squared singular values (capped by ``rank``).
A layer is only replaced where the factors have fewer parameters than the original.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils import parametrize

from paretoedge.compression import _arch
from paretoedge.compression._config import LowRankConfig
from paretoedge.compression._modules import LowRankEmbedding, LowRankLinear
from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from paretoedge.compression._context import CompressContext

log = logging.getLogger(__name__)


def choose_rank(singular: torch.Tensor, config: LowRankConfig) -> int:
    """Rank from a fixed value and/or an energy fraction of the squared spectrum."""
    full = singular.numel()
    rank = full
    if config.energy is not None:
        energy = singular.double().pow(2)
        cum = torch.cumsum(energy, 0) / energy.sum().clamp_min(1e-30)
        rank = int(torch.searchsorted(cum, torch.tensor(config.energy, dtype=cum.dtype))) + 1
    if config.rank is not None:
        rank = min(rank, config.rank)
    return max(1, min(rank, full))


def _factor(w: torch.Tensor, config: LowRankConfig) -> tuple[int, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    r = choose_rank(s, config)
    root = s[:r].sqrt()
    return r, (u[:, :r] * root).float(), (root[:, None] * vh[:r]).float()


def low_rank(model: nn.Module, config: LowRankConfig) -> dict[str, int]:
    """Factor the targeted layers in place; returns module name -> rank of those replaced."""
    replaced: dict[str, int] = {}
    targets = set(config.targets)
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear):
            continue
        if _arch.group_of(model, name) not in targets or name.endswith((".down", ".up")):
            continue
        if parametrize.is_parametrized(module):
            raise ConfigError("lowrank", "after prune/quant", "low-rank before masks/quantisers")
        out_f, in_f = module.weight.shape
        r, up, down = _factor(module.weight, config)
        if r * (in_f + out_f) >= in_f * out_f:
            continue
        new = LowRankLinear(in_f, out_f, r, bias=module.bias is not None)
        with torch.no_grad():
            new.down.weight.copy_(down)
            new.up.weight.copy_(up)
            if module.bias is not None:
                new.up.bias.copy_(module.bias.detach())
        model.set_submodule(name, new.train(module.training))
        replaced[name] = r
    if "embeddings" in targets:
        name = _arch.family(model).word_embeddings
        emb = model.get_submodule(name)
        if isinstance(emb, nn.Embedding):
            vocab, dim = emb.weight.shape
            r, left, right = _factor(emb.weight, config)
            if r * (vocab + dim) < vocab * dim:
                new_emb = LowRankEmbedding(vocab, dim, r, padding_idx=emb.padding_idx)
                with torch.no_grad():
                    new_emb.embed.weight.copy_(left)
                    new_emb.proj.weight.copy_(right.t())
                model.set_submodule(name, new_emb.train(emb.training))
                replaced[name] = r
    log.info("low-rank factored %d layers", len(replaced))
    return replaced


def run_lowrank(ctx: CompressContext, config: LowRankConfig) -> bool:
    """The ``lowrank`` step."""
    low_rank(ctx.model, config)
    return True
