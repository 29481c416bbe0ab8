"""Binary (1-bit) and ternary (2-bit) weights: values, packed bytes, QAT, export, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from paretoedge.compression import CompressionSpec, compress, model_stats
from paretoedge.compression._modules import binarize, ternarize
from paretoedge.errors import ConfigError

WEIGHT_ONLY = {"quant.act_bits": "none"}


def _ffn(model):
    return model.bert.encoder.layer[0].intermediate.dense.weight.detach()


def test_binarize_and_ternarize_per_row():
    w = torch.tensor([[0.5, -1.5, 1.0, -0.25], [0.0, 0.1, -0.1, 0.2]])
    b = binarize(w)
    assert torch.equal(b.abs()[0], torch.full((4,), 0.8125))  # mean |w| of row 0
    assert torch.equal(torch.sign(b), torch.sign(w))
    t = ternarize(w)
    # row 0: delta = 0.7 * 0.8125 = 0.569 -> keep -1.5 and 1.0, alpha = 1.25
    assert t[0].tolist() == [0.0, -1.25, 1.25, 0.0]
    # row 1: delta = 0.07 -> the exact zero goes, alpha = mean(0.1, 0.1, 0.2)
    a = 0.4 / 3
    torch.testing.assert_close(t[1], torch.tensor([0.0, a, -a, a]))


def test_ternary_threshold_follows_the_weights_under_qat():
    """The threshold is statistics-based, not learned: the QAT quantiser has no parameters
    and recomputes 0.7 * mean|w| from the current float weights at every forward pass."""
    from paretoedge.compression._modules import UniformFakeQuant

    quant = UniformFakeQuant(2)
    assert list(quant.parameters()) == []
    w = torch.tensor([[0.5, -1.5, 1.0, -0.25]], requires_grad=True)
    assert quant(w).tolist() == [[0.0, -1.25, 1.25, 0.0]]
    with torch.no_grad():  # a training step shrinks the large weights: the band moves
        w[0, 1], w[0, 2] = -0.6, 0.55
    # mean |w| = 0.475, delta = 0.3325: 0.5 now passes, alpha = mean(0.5, 0.6, 0.55)
    torch.testing.assert_close(quant(w), torch.tensor([[0.55, -0.55, 0.55, 0.0]]))
    quant(w).sum().backward()  # straight-through: the gradient reaches every weight
    assert w.grad is not None and torch.equal(w.grad, torch.ones_like(w))


@pytest.mark.parametrize(("bits", "levels"), [(1, 2), (2, 3)])
def test_weights_take_at_most_two_or_three_values_per_row(tiny_bert, bits, levels):
    result = compress(tiny_bert, CompressionSpec.from_flat({"quant.bits": bits, **WEIGHT_ONLY}))
    w = _ffn(result.model)
    for row in w:
        assert row.unique().numel() <= levels
    if bits == 1:
        assert (w != 0).all()
    info = {i.module: i for i in result.stats.layers}["bert.encoder.layer.0.intermediate.dense"]
    assert info.bits == bits
    # packed codes plus one fp32 scale per output row
    assert info.stored_bytes == math.ceil(w.numel() * bits / 8) + w.shape[0] * 4


def test_stored_bytes_shrink_with_bits(tiny_bert):
    sizes = [
        compress(
            tiny_bert, CompressionSpec.from_flat({"quant.bits": b, **WEIGHT_ONLY})
        ).stats.stored_bytes
        for b in (4, 2, 1)
    ]
    assert sizes[0] > sizes[1] > sizes[2]
    assert model_stats(tiny_bert).stored_bytes > sizes[0]


@pytest.mark.parametrize("flat", [{"quant.bits": 3}, {"quant.layer_bits.ffn": 0}])
def test_bad_bits_are_one_line_errors(flat):
    with pytest.raises(ConfigError) as info:
        CompressionSpec.from_flat(flat)
    message = str(info.value)
    assert "\n" not in message and "quant." in message and "1" in message and "2" in message


def test_qat_recovery_trains_through_the_ternary_quantiser(tiny_bert, tokenizer, small_task):
    rec = {"recovery.steps": 3, "recovery.batch_size": 8, "recovery.lr": 1e-3}
    flat = {"quant.bits": 2, **WEIGHT_ONLY, **rec}
    ptq = compress(tiny_bert, CompressionSpec.from_flat(flat), tokenizer=tokenizer, task=small_task)
    qat_spec = CompressionSpec.from_flat({**flat, "quant.qat": True})
    qat = compress(tiny_bert, qat_spec, tokenizer=tokenizer, task=small_task, seed=1)
    again = compress(tiny_bert, qat_spec, tokenizer=tokenizer, task=small_task, seed=1)
    assert qat.applied == ("quant(qat)", "recovery")
    w = _ffn(qat.model)
    for row in w:
        assert row.unique().numel() <= 3  # still ternary after training through the STE
    assert not torch.equal(w, _ffn(ptq.model))
    assert torch.equal(w, _ffn(again.model))  # deterministic


def test_composes_with_pruning_and_exports(tiny_bert, check_onnx):
    spec = CompressionSpec.from_flat(
        {"prune.sparsity": 0.5, "quant.bits": 1, "quant.layer_bits.embeddings": 8, **WEIGHT_ONLY}
    )
    result = compress(tiny_bert, spec)
    assert result.applied == ("prune", "quant(ptq)")
    w = _ffn(result.model)
    assert (w == 0).float().mean() >= 0.3  # pruned zeros stay exact through binarisation
    for row in w:
        assert row[row != 0].abs().unique().numel() <= 1
    onnx_model = check_onnx(result.model)
    layers = json.loads({p.key: p.value for p in onnx_model.metadata_props}["paretoedge.layers"])
    bits = {layer["module"]: layer["bits"] for layer in layers}
    assert bits["bert.encoder.layer.0.intermediate.dense"] == 1
    assert bits["bert.embeddings.word_embeddings"] == 8
