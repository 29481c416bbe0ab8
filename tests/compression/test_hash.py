"""Hashed weights (HashedNets): real vs virtual sizes, training through the hash, export."""

from __future__ import annotations

import math

import pytest
import torch

from paretoedge.compression import (
    CompressionSpec,
    compress,
    load_compressed,
    model_stats,
    save_compressed,
)
from paretoedge.compression._hash import SEED_BYTES
from paretoedge.compression._modules import HashedLinear, hash_tables
from paretoedge.compression._transform import card_notes
from paretoedge.errors import ConfigError


def _logits(model, tokenizer):
    enc = tokenizer(["a fine film", "dull and long"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**enc).logits


def _hashed(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, HashedLinear)]


def test_hash_tables_are_seeded_and_balanced():
    b1, s1 = hash_tables(64, 128, 1024, seed=5)
    b2, s2 = hash_tables(64, 128, 1024, seed=5)
    b3, _ = hash_tables(64, 128, 1024, seed=6)
    assert torch.equal(b1, b2) and torch.equal(s1, s2) and not torch.equal(b1, b3)
    counts = torch.bincount(b1.flatten(), minlength=1024)
    # ~8 virtual weights per bucket, as a uniform hash gives (Poisson: empty ones are rare)
    assert (counts == 0).sum() <= 5 and counts.max() < 3 * 8
    assert set(s1.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize(
    ("flat", "field"),
    [
        ({"hash.ratio": 0}, "hash.ratio"),
        ({"hash.ratio": 1.5}, "hash.ratio"),
        ({"hash.targets": "embeddings"}, "hash.targets"),
    ],
)
def test_bad_values_are_one_line_errors(flat, field):
    with pytest.raises(ConfigError, match=field) as info:
        CompressionSpec.from_flat(flat)
    assert "\n" not in str(info.value)


def test_virtual_weights_index_a_smaller_real_array(tiny_bert):
    before = model_stats(tiny_bert)
    result = compress(tiny_bert, CompressionSpec.from_flat({"hash.ratio": 0.25}))
    assert result.applied == ("hash",)
    hashed = _hashed(result.model)
    assert len(hashed) == 2 * 6  # q, k, v, attention out, ffn in, ffn out per layer
    virtual = real = 0
    for _, m in hashed:
        w = m.weight
        assert w.shape == (m.out_features, m.in_features)
        assert m.real.numel() == math.ceil(0.25 * w.numel())
        # every virtual weight is +- one real parameter
        assert torch.equal(w.abs(), m.real.abs()[m.bucket])
        virtual += w.numel()
        real += m.real.numel()
    saved = (virtual - real) * 4 - SEED_BYTES * len(hashed)
    assert result.stats.stored_bytes == before.stored_bytes - saved
    assert result.stats.parameters == before.parameters - (virtual - real)
    # the first projection approximates the pre-trained weight (least squares per bucket)
    orig = tiny_bert.bert.encoder.layer[0].intermediate.dense.weight
    got = result.model.bert.encoder.layer[0].intermediate.dense.weight
    assert torch.nn.functional.cosine_similarity(orig.flatten(), got.flatten(), dim=0) > 0.3


def test_ratio_one_changes_nothing(tiny_bert):
    result = compress(tiny_bert, CompressionSpec.from_flat({"hash.ratio": 1.0}))
    assert result.applied == () and not _hashed(result.model)


def test_trained_through_the_hash_and_composes(tiny_bert, tokenizer, small_task, check_onnx):
    spec = CompressionSpec.from_flat(
        {
            "hash.ratio": 0.5,
            "hash.targets": "ffn",
            "heads.keep": 0.5,
            "quant.bits": 8,
            "quant.act_bits": "none",
            "recovery.steps": 3,
            "recovery.batch_size": 8,
            "recovery.lr": 1e-3,
        }
    )
    untrained = compress(tiny_bert, spec.replace(recovery=None))
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=4)
    again = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=4)
    assert result.applied == ("heads", "hash", "recovery", "quant(ptq)")
    names = [n for n, _ in _hashed(result.model)]
    assert names and all("intermediate" in n or "output.dense" in n for n in names)
    layer = result.model.bert.encoder.layer[0]
    assert layer.attention.self.query.weight.shape == (32, 64)  # heads pruned
    assert layer.attention.self.query.paretoedge_quant["bits"] == 8  # quantised, not hashed
    hashed = dict(_hashed(result.model))
    before = dict(_hashed(untrained.model))
    assert not torch.equal(hashed[names[0]].real, before[names[0]].real)  # trained
    assert torch.equal(hashed[names[0]].real, dict(_hashed(again.model))[names[0]].real)
    # the runtime graph holds materialised weights: a plain MatMul per layer
    onnx_model = check_onnx(result.model)
    assert not any(
        n.op_type == "Gather" and "intermediate" in n.name for n in onnx_model.graph.node
    )
    assert any("materialised" in note for note in card_notes(spec))


def test_save_and_load_rebuild_the_hash_from_the_seed(tiny_bert, tokenizer, tmp_path):
    result = compress(tiny_bert, CompressionSpec.from_flat({"hash.ratio": 0.3}), seed=9)
    save_compressed(result.model, tmp_path / "m")
    loaded = load_compressed(tmp_path / "m")
    assert len(_hashed(loaded)) == 12
    torch.testing.assert_close(_logits(loaded, tokenizer), _logits(result.model, tokenizer))
