"""Composition: canonical order, determinism, data requirements, save/load."""

from __future__ import annotations

import pytest
import torch

from paretoedge.compression import (
    CompressionSpec,
    LowRankEmbedding,
    compress,
    load_compressed,
    model_stats,
    save_compressed,
)
from paretoedge.errors import ConfigError

FULL = {
    "heads.keep": 0.5,
    "ffn.keep": 0.5,
    "lowrank.rank": 8,
    "lowrank.targets": "attention,embeddings",
    "prune.sparsity": 0.5,
    "quant.bits": 8,
    "quant.layer_bits.ffn": 4,
    "recovery.steps": 2,
    "recovery.batch_size": 8,
}


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _inputs(tokenizer):
    return tokenizer(["a fine film", "dull and long"], return_tensors="pt", padding=True)


def test_full_pipeline_runs_in_canonical_order(tiny_bert, tokenizer, small_task):
    spec = CompressionSpec.from_flat(FULL)
    before = model_stats(tiny_bert)
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=3)
    assert result.applied == (
        "heads",
        "ffn",
        "lowrank",
        "prune",
        "recovery",
        "quant(ptq)",
        "calibrate",
    )
    stats = result.stats
    assert stats.parameters < before.parameters
    assert stats.stored_bytes < before.stored_bytes / 3
    assert stats.sparsity == pytest.approx(0.5, abs=0.01)  # masks survived recovery
    assert isinstance(result.model.bert.embeddings.word_embeddings, LowRankEmbedding)
    ffn = result.model.bert.encoder.layer[0].intermediate.dense
    assert ffn.weight.shape == (64, 64)
    assert ffn.weight.unique().numel() <= 64 * 15 + 1  # 4-bit: <= 15 levels per row
    assert hasattr(result.model.bert.encoder.layer[0].attention.self.query.down, "act_quant")
    assert not hasattr(ffn, "act_quant")  # int8 activations only for 8-bit layers
    assert result.wall_s > 0
    # the input model is untouched
    assert tiny_bert.bert.encoder.layer[0].intermediate.dense.weight.shape == (128, 64)
    with torch.no_grad():
        assert result.model(**_inputs(tokenizer)).logits.shape == (2, 2)


def test_qat_inserts_quantizers_before_recovery(tiny_bert, tokenizer, small_task):
    spec = CompressionSpec.from_flat(
        {
            "quant.bits": 4,
            "quant.qat": True,
            "quant.act_bits": "none",
            "recovery.steps": 2,
            "recovery.batch_size": 8,
        }
    )
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task)
    assert result.applied == ("quant(qat)", "recovery")
    w = result.model.bert.encoder.layer[1].intermediate.dense.weight
    scale = w.abs().amax(dim=1, keepdim=True) / 7
    torch.testing.assert_close(w / scale, (w / scale).round(), atol=1e-3, rtol=0)


def test_same_spec_and_seed_same_model(tiny_bert, tokenizer, small_task):
    spec = CompressionSpec.from_flat({**FULL, "heads.criterion": "gradient"})
    a = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=7)
    b = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=7)
    sa, sb = _state(a.model), _state(b.model)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    c = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=8)
    assert any(not torch.equal(sa[k], v) for k, v in _state(c.model).items() if k in sa)


def test_transforms_needing_data_say_so(tiny_bert):
    for flat, field in (
        ({"recovery.steps": 5}, "recovery.steps"),
        ({"quant.bits": 8}, "quant.act_bits"),
        ({"heads.criterion": "gradient"}, "heads.criterion"),
    ):
        with pytest.raises(ConfigError, match=field):
            compress(tiny_bert, CompressionSpec.from_flat(flat))
    # weight-only quantisation (or no 8-bit layer) needs no data
    assert compress(tiny_bert, CompressionSpec.from_flat({"quant.bits": 4})).applied == (
        "quant(ptq)",
    )
    result = compress(
        tiny_bert, CompressionSpec.from_flat({"quant.bits": 8, "quant.act_bits": "none"})
    )
    assert result.applied == ("quant(ptq)",)


def test_distill_more_layers_than_teacher(tiny_bert, tokenizer, small_task):
    spec = CompressionSpec.from_flat({"distill.layers": 3, "distill.steps": 0})
    with pytest.raises(ConfigError, match="distill.layers"):
        compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task)


def test_distill_then_compress(tiny_bert, tokenizer, small_task):
    spec = CompressionSpec.from_flat(
        {
            "distill.layers": 1,
            "distill.steps": 2,
            "distill.batch_size": 8,
            "prune.sparsity": 0.3,
            "recovery.steps": 1,
            "recovery.batch_size": 8,
        }
    )
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task)
    assert result.applied == ("distill", "prune", "recovery")
    assert len(result.model.bert.encoder.layer) == 1


def test_save_and_load_compressed_round_trip(tiny_bert, tokenizer, small_task, tmp_path):
    spec = CompressionSpec.from_flat(FULL)
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task)
    out = save_compressed(result.model, tmp_path / "m", tokenizer=tokenizer)
    assert (out / "paretoedge_structure.json").is_file()
    loaded = load_compressed(out)
    assert loaded.paretoedge_spec == spec
    assert model_stats(loaded) == result.stats
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(**_inputs(tokenizer)).logits, result.model(**_inputs(tokenizer)).logits
        )
