"""Small BERT classifiers exported to static-shape ONNX, for tests, benchmarks and calibration.

A candidate from the compression half differs from its teacher by shapes (layers, heads,
hidden and FFN width) and by per-Linear bit-widths and sparsity recorded in the
``paretoedge.layers`` metadata; :func:`make_bert_onnx` produces both kinds of variation from
a config, with random weights (latency does not depend on weight values).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from paretoedge.errors import ConfigError


@dataclass(frozen=True)
class BertShape:
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    ffn: int = 128
    seq_len: int = 32
    batch: int = 1
    vocab: int = 1000
    keep_heads: int | None = None

    def __post_init__(self) -> None:
        for field in ("layers", "hidden", "heads", "ffn", "seq_len", "batch", "vocab"):
            if getattr(self, field) < 1:
                raise ConfigError(field, getattr(self, field), "an integer >= 1")
        if self.hidden % self.heads:
            raise ConfigError("heads", self.heads, f"a divisor of hidden={self.hidden}")
        if self.keep_heads is not None and not 1 <= self.keep_heads <= self.heads:
            raise ConfigError("keep_heads", self.keep_heads, f"1..{self.heads}")

    @property
    def tag(self) -> str:
        return (
            f"L{self.layers}-H{self.hidden}-A{self.heads}-F{self.ffn}-S{self.seq_len}"
            f"-B{self.batch}" + ("" if self.keep_heads is None else f"-K{self.keep_heads}")
        )


def make_bert_onnx(
    path: Path,
    shape: BertShape,
    *,
    bits: int = 32,
    act_bits: int | None = None,
    sparsity: float = 0.0,
    seed: int = 0,
) -> Path:
    """Export a random ``BertForSequenceClassification`` of ``shape`` to ``path``.

    ``bits``/``act_bits``/``sparsity`` are written into ``paretoedge.layers`` metadata for
    every encoder Linear (as the compression export does); with ``sparsity`` > 0 that fraction
    of each encoder weight is also zeroed (smallest magnitudes).
    """
    import onnx
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.ffn,
        max_position_embeddings=max(128, shape.seq_len),
        attn_implementation="eager",
    )
    model = BertForSequenceClassification(config).eval()
    if shape.keep_heads is not None:
        _prune_heads(model, shape.keep_heads)
    linears = {
        name: mod
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear) and ".encoder." in f".{name}"
    }
    if sparsity > 0:
        with torch.no_grad():
            for mod in linears.values():
                w = mod.weight
                k = int(w.numel() * sparsity)
                if k:
                    cut = w.abs().flatten().kthvalue(k).values
                    w[w.abs() <= cut] = 0.0
    ids = torch.randint(0, shape.vocab, (shape.batch, shape.seq_len))
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, mask, types),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamo=False,
            opset_version=17,
        )
    onnx_model = onnx.load(str(path))
    # map each Linear to the initializer that its MatMul consumes: the legacy exporter stores
    # the transposed weight under an anonymous name, so match by value
    import numpy as np
    from onnx import numpy_helper as nh

    inits = {i.name: nh.to_array(i) for i in onnx_model.graph.initializer}
    layers = []
    for name, mod in linears.items():
        wt = mod.weight.detach().numpy()
        found = None
        for iname, arr in inits.items():
            if arr.shape == wt.T.shape and np.array_equal(arr, wt.T):
                found = iname
                break
            if arr.shape == wt.shape and np.array_equal(arr, wt):
                found = iname
                break
        layers.append(
            {
                "module": name,
                "initializer": found,
                "bits": bits,
                "scheme": "uniform",
                "sparsity": float(sparsity),
                "act_bits": act_bits,
            }
        )
    meta = {
        "paretoedge.layers": json.dumps(layers),
        "paretoedge.batch": str(shape.batch),
        "paretoedge.seq_len": str(shape.seq_len),
    }
    for key, value in meta.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(onnx_model, str(path))
    return path


def _prune_heads(model, keep: int) -> None:
    """Keep the first ``keep`` heads of every layer: a real structural change of the Linears."""
    import torch

    for layer in model.bert.encoder.layer:
        attn = layer.attention.self
        width = keep * attn.attention_head_size
        with torch.no_grad():
            for name in ("query", "key", "value"):
                old = getattr(attn, name)
                new = torch.nn.Linear(old.in_features, width)
                new.weight.copy_(old.weight[:width])
                new.bias.copy_(old.bias[:width])
                setattr(attn, name, new)
            dense = layer.attention.output.dense
            new = torch.nn.Linear(width, dense.out_features)
            new.weight.copy_(dense.weight[:, :width])
            new.bias.copy_(dense.bias)
            layer.attention.output.dense = new
        attn.num_attention_heads = keep
        attn.all_head_size = width
