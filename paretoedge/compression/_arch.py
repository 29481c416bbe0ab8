"""Where the parts of a supported encoder live (BERT/MiniLM and DistilBERT).

The transforms work on module names, so one small table per family says which Linear is a
query, which one is the FFN's input, and which attribute holds a layer's head count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class _Family:
    blocks: str
    attention: str
    heads_attrs: tuple[str, ...]
    head_size_attr: str
    all_head_size_attr: str | None
    query: str
    key: str
    value: str
    out: str
    ffn_in: str
    ffn_out: str
    word_embeddings: str


_FAMILIES: dict[str, _Family] = {
    "bert": _Family(
        blocks="bert.encoder.layer",
        attention="attention.self",
        heads_attrs=("num_attention_heads",),
        head_size_attr="attention_head_size",
        all_head_size_attr="all_head_size",
        query="attention.self.query",
        key="attention.self.key",
        value="attention.self.value",
        out="attention.output.dense",
        ffn_in="intermediate.dense",
        ffn_out="output.dense",
        word_embeddings="bert.embeddings.word_embeddings",
    ),
    "distilbert": _Family(
        blocks="distilbert.transformer.layer",
        attention="attention",
        heads_attrs=("n_heads",),
        head_size_attr="attention_head_size",
        all_head_size_attr=None,
        query="attention.q_lin",
        key="attention.k_lin",
        value="attention.v_lin",
        out="attention.out_lin",
        ffn_in="ffn.lin1",
        ffn_out="ffn.lin2",
        word_embeddings="distilbert.embeddings.word_embeddings",
    ),
}


@dataclass(frozen=True)
class Block:
    """Full module names of one transformer block's parts."""

    index: int
    attention: str
    query: str
    key: str
    value: str
    out: str
    ffn_in: str
    ffn_out: str


def family(model: nn.Module) -> _Family:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in _FAMILIES:
        raise ConfigError("model", model_type, f"a model of type {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[model_type]


def blocks(model: nn.Module) -> list[Block]:
    """The transformer blocks of ``model`` in order."""
    fam = family(model)
    layers = model.get_submodule(fam.blocks)
    out = []
    for i in range(len(layers)):  # type: ignore[arg-type]
        p = f"{fam.blocks}.{i}."
        out.append(
            Block(
                index=i,
                attention=p + fam.attention,
                query=p + fam.query,
                key=p + fam.key,
                value=p + fam.value,
                out=p + fam.out,
                ffn_in=p + fam.ffn_in,
                ffn_out=p + fam.ffn_out,
            )
        )
    return out


def group_of(model: nn.Module, name: str) -> str:
    """Layer group of a (possibly factored) module: attention, ffn, embeddings or head."""
    fam = family(model)
    base = name
    for suffix in (".down", ".up", ".embed", ".proj"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    if base == fam.word_embeddings:
        return "embeddings"
    if base.startswith(fam.blocks + "."):
        rest = base[len(fam.blocks) + 1 :].split(".", 1)
        if len(rest) == 2:
            if rest[1] in (fam.query, fam.key, fam.value, fam.out):
                return "attention"
            if rest[1] in (fam.ffn_in, fam.ffn_out):
                return "ffn"
    return "head"


def block_index(model: nn.Module, name: str) -> int | None:
    fam = family(model)
    if name.startswith(fam.blocks + "."):
        return int(name[len(fam.blocks) + 1 :].split(".", 1)[0])
    return None


def get_heads(model: nn.Module, block: Block) -> tuple[int, int]:
    """(number of heads, head size) of a block's self-attention."""
    fam = family(model)
    attn = model.get_submodule(block.attention)
    return int(getattr(attn, fam.heads_attrs[0])), int(getattr(attn, fam.head_size_attr))


def set_heads(model: nn.Module, block: Block, n_heads: int) -> None:
    """Record a block's new head count on its attention module (the forward infers it)."""
    fam = family(model)
    attn = model.get_submodule(block.attention)
    head_size = int(getattr(attn, fam.head_size_attr))
    for attr in fam.heads_attrs:
        setattr(attn, attr, n_heads)
    if fam.all_head_size_attr:
        setattr(attn, fam.all_head_size_attr, n_heads * head_size)
