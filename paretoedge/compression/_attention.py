"""Efficient attention: block-local and linear (kernelised) self-attention in chosen layers.

:func:`replace_attention` swaps a BERT self-attention module for
:class:`EfficientSelfAttention`, which keeps the layer's ``query``/``key``/``value``
Linears (same names, same weights: the state dict does not change, head pruning and
quantisation still find them) and computes one of:

* ``local``: the sequence is cut into blocks of ``window`` tokens and each query attends to
  its own block and the two neighbouring ones. The graph holds [blocks, w, 3w] score
  matmuls, so work grows as n * 3w instead of n^2: a real gain at 256 tokens, none at 48
  (where a 16-token window sees 48 keys anyway, plus the block bookkeeping).
* ``linear``: phi(Q) (phi(K)^T V) with phi(x) = elu(x) + 1 (Katharopoulos et al., 2020):
  no n x n matrix at all, O(n d^2).
* ``softmax``: the layer is left as it is.

Padded keys are excluded exactly (mask applied to the scores or to phi(K)). The change has
no parameters of its own; the recovery fine-tune (``recovery.steps``) adapts the weights.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from paretoedge.compression import _arch
from paretoedge.compression._extra_config import AttentionConfig
from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from paretoedge.compression._context import CompressContext

_NEG = -1e9


def key_keep(attention_mask: torch.Tensor | None, batch: int, n: int) -> torch.Tensor:
    """[batch, n] float 1/0 of the keys a query may see, from HF's additive/bool mask."""
    if attention_mask is None:
        return torch.ones(batch, n)
    m = attention_mask
    keep = m if m.dtype == torch.bool else m > -1.0
    if keep.dim() == 4:
        keep = keep[:, 0, 0, :]
    elif keep.dim() == 3:
        keep = keep[:, 0, :]
    return keep.expand(batch, n).to(torch.float32)


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor, window: int
) -> torch.Tensor:
    """Block-local attention of [B, h, n, d] tensors; each block sees itself and neighbours."""
    b, h, n, d = q.shape
    w = min(window, n)
    blocks = -(-n // w)
    pad = blocks * w - n
    if pad:
        q, k, v = (nn.functional.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        keep = nn.functional.pad(keep, (0, pad))
    # one empty block on each side so every block has a left and a right neighbour
    k = nn.functional.pad(k, (0, 0, w, w)).reshape(b, h, blocks + 2, w, d)
    v = nn.functional.pad(v, (0, 0, w, w)).reshape(b, h, blocks + 2, w, d)
    kp = nn.functional.pad(keep, (w, w)).reshape(b, 1, blocks + 2, w)
    kk = torch.cat([k[:, :, :-2], k[:, :, 1:-1], k[:, :, 2:]], dim=3)  # [B,h,blocks,3w,d]
    vv = torch.cat([v[:, :, :-2], v[:, :, 1:-1], v[:, :, 2:]], dim=3)
    mk = torch.cat([kp[:, :, :-2], kp[:, :, 1:-1], kp[:, :, 2:]], dim=3)  # [B,1,blocks,3w]
    qb = q.reshape(b, h, blocks, w, d)
    scores = torch.matmul(qb, kk.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    scores = scores + (1.0 - mk.unsqueeze(-2)) * _NEG
    out = torch.matmul(torch.softmax(scores, dim=-1), vv)
    return out.reshape(b, h, blocks * w, d)[:, :, :n]


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor
) -> torch.Tensor:
    """Kernelised attention phi(Q) (phi(K)^T V) / (phi(Q) sum phi(K)), phi = elu + 1."""
    fq = nn.functional.elu(q) + 1.0
    fk = (nn.functional.elu(k) + 1.0) * keep[:, None, :, None]
    kv = torch.matmul(fk.transpose(-1, -2), v)  # [B, h, d, d]
    norm = torch.matmul(fq, fk.sum(dim=2, keepdim=True).transpose(-1, -2))  # [B, h, n, 1]
    return torch.matmul(fq, kv) / norm.clamp_min(1e-6)


class EfficientSelfAttention(nn.Module):
    """Drop-in for HF's ``BertSelfAttention`` computing local or linear attention.

    It returns no attention map (linear attention never forms one), so the recovery
    fine-tune matches logits and hidden states only (``paretoedge_no_attention_maps``).
    """

    paretoedge_no_attention_maps = True

    def __init__(self, original: Any, kind: str, window: int) -> None:
        super().__init__()
        self.kind = kind
        self.window = window
        self.query: nn.Module = original.query
        self.key: nn.Module = original.key
        self.value: nn.Module = original.value
        self.num_attention_heads = int(original.num_attention_heads)
        self.attention_head_size = int(original.attention_head_size)
        self.all_head_size = int(original.all_head_size)
        self.config = original.config

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        b, n = hidden_states.shape[0], hidden_states.shape[1]
        shape = (b, n, -1, self.attention_head_size)
        q = self.query(hidden_states).view(*shape).transpose(1, 2)
        k = self.key(hidden_states).view(*shape).transpose(1, 2)
        v = self.value(hidden_states).view(*shape).transpose(1, 2)
        keep = key_keep(attention_mask, b, n)
        if self.kind == "local":
            out = local_attention(q, k, v, keep, self.window)
        else:
            out = linear_attention(q, k, v, keep)
        return out.transpose(1, 2).reshape(b, n, -1).contiguous(), None


def replace_attention(model: Any, config: AttentionConfig) -> list[int]:
    """Swap the self-attention of ``config.layers`` (all if empty); returns the layers changed.

    Raises:
        ConfigError: a layer index the model does not have, or a model family whose
            attention module is not BERT's.
    """
    if config.kind == "softmax":
        return []
    _arch.family(model)  # an unsupported model type fails here with its own message
    if getattr(model.config, "model_type", None) != "bert":
        raise ConfigError("attention.kind", config.kind, "softmax for non-BERT models")
    blocks = _arch.blocks(model)
    layers = config.layers or tuple(range(len(blocks)))
    bad = [i for i in layers if i >= len(blocks)]
    if bad:
        raise ConfigError(
            "attention.layers", ",".join(map(str, layers)), f"indices in 0..{len(blocks) - 1}"
        )
    for i in layers:
        name = blocks[i].attention
        model.set_submodule(
            name, EfficientSelfAttention(model.get_submodule(name), config.kind, config.window)
        )
    return list(layers)


def run_attention(ctx: CompressContext, config: AttentionConfig) -> bool:
    """The ``attention`` step; ``softmax`` leaves the model as it is (not applied)."""
    return bool(replace_attention(ctx.model, config))
