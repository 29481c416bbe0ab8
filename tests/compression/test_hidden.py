"""Hidden-size pruning: shapes through the whole model, bytes, recovery, export, save/load."""

from __future__ import annotations

import pytest
import torch

from paretoedge.compression import (
    CompressionSpec,
    compress,
    load_compressed,
    model_stats,
    save_compressed,
)
from paretoedge.compression._hidden import channel_importance
from paretoedge.errors import ConfigError


def _logits(model, tokenizer):
    enc = tokenizer(["a fine film", "dull and long"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**enc).logits


@pytest.mark.parametrize("keep", [0, 1.2, "half"])
def test_bad_values_are_one_line_errors(keep):
    with pytest.raises(ConfigError, match="hidden.keep") as info:
        CompressionSpec.from_flat({"hidden.keep": keep})
    assert "\n" not in str(info.value)


def test_shapes_shrink_everywhere(tiny_bert, tokenizer):
    before = model_stats(tiny_bert)
    result = compress(tiny_bert, CompressionSpec.from_flat({"hidden.keep": 0.5}))
    assert result.applied == ("hidden",)
    m = result.model
    assert m.config.hidden_size == 32
    emb = m.bert.embeddings
    assert emb.word_embeddings.weight.shape[1] == 32
    assert emb.position_embeddings.weight.shape[1] == 32
    assert emb.token_type_embeddings.weight.shape[1] == 32
    assert emb.LayerNorm.weight.shape == (32,)
    for layer in m.bert.encoder.layer:
        assert layer.attention.self.query.weight.shape == (64, 32)  # heads keep their width
        assert layer.attention.output.dense.weight.shape == (32, 64)
        assert layer.attention.output.LayerNorm.weight.shape == (32,)
        assert layer.intermediate.dense.weight.shape == (128, 32)
        assert layer.output.dense.weight.shape == (32, 128)
        assert layer.output.LayerNorm.weight.shape == (32,)
    assert m.bert.pooler.dense.weight.shape == (32, 32)
    assert m.classifier.weight.shape == (2, 32)
    assert result.stats.parameters < 0.6 * before.parameters
    assert result.stats.stored_bytes < 0.6 * before.stored_bytes
    assert _logits(m, tokenizer).shape == (2, 2)


def test_keeps_the_most_important_channels(tiny_bert):
    with torch.no_grad():
        tiny_bert.bert.embeddings.word_embeddings.weight[:, 5] *= 50
        tiny_bert.bert.embeddings.word_embeddings.weight[:, 7] *= 1e-4
        for layer in tiny_bert.bert.encoder.layer:
            layer.intermediate.dense.weight[:, 7] *= 1e-4
    score = channel_importance(tiny_bert)
    assert score.argmax() == 5 and score[7] < score.median()
    m = compress(tiny_bert, CompressionSpec.from_flat({"hidden.keep": 0.25})).model
    kept = m.bert.embeddings.word_embeddings.weight
    original = tiny_bert.bert.embeddings.word_embeddings.weight
    assert any(torch.equal(kept[:, i], original[:, 5]) for i in range(kept.shape[1]))
    assert not any(torch.equal(kept[:, i], original[:, 7]) for i in range(kept.shape[1]))


def test_keep_one_changes_nothing(tiny_bert, tokenizer):
    result = compress(tiny_bert, CompressionSpec.from_flat({"hidden.keep": 1.0}))
    assert result.applied == ()
    torch.testing.assert_close(_logits(result.model, tokenizer), _logits(tiny_bert, tokenizer))


def test_recovery_composition_export_and_round_trip(
    tiny_bert, tokenizer, small_task, check_onnx, tmp_path
):
    spec = CompressionSpec.from_flat(
        {
            "hidden.keep": 0.75,
            "heads.keep": 0.5,
            "ffn.keep": 0.5,
            "quant.bits": 8,
            "quant.act_bits": "none",
            "recovery.steps": 2,
            "recovery.batch_size": 8,
        }
    )
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=5)
    again = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=5)
    assert result.applied == ("heads", "hidden", "ffn", "recovery", "quant(ptq)")
    layer = result.model.bert.encoder.layer[1]
    assert layer.attention.self.query.weight.shape == (32, 48)
    assert layer.intermediate.dense.weight.shape == (64, 48)
    torch.testing.assert_close(_logits(result.model, tokenizer), _logits(again.model, tokenizer))
    check_onnx(result.model)
    save_compressed(result.model, tmp_path / "m")
    loaded = load_compressed(tmp_path / "m")
    assert loaded.config.hidden_size == 48
    torch.testing.assert_close(_logits(loaded, tokenizer), _logits(result.model, tokenizer))


def test_other_families_are_refused_in_one_line():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    )
    with pytest.raises(ConfigError, match="hidden.keep.*BERT-family") as info:
        compress(model, CompressionSpec.from_flat({"hidden.keep": 0.5}))
    assert "\n" not in str(info.value)
