"""Cross-layer parameter sharing: ties, init, bytes, composition, export, save/load, errors."""

from __future__ import annotations

import json

import pytest
import torch

from paretoedge.compression import (
    CompressionSpec,
    compress,
    load_compressed,
    model_stats,
    save_compressed,
)
from paretoedge.compression._share import share_groups
from paretoedge.errors import ConfigError


def _layers(model):
    return model.bert.encoder.layer


def _logits(model, tokenizer):
    enc = tokenizer(["a fine film", "dull and long"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**enc).logits


def test_groups_are_adjacent_and_even():
    assert share_groups(6, 4) == [[0, 1], [2, 3], [4], [5]]
    assert share_groups(6, 1) == [[0, 1, 2, 3, 4, 5]]
    assert share_groups(3, 3) == [[0], [1], [2]]


@pytest.mark.parametrize(
    ("flat", "field"),
    [
        ({"share.groups": 0}, "share.groups"),
        ({"share.groups": "two"}, "share.groups"),
        ({"share.init": "median"}, "share.init"),
    ],
)
def test_bad_values_are_one_line_errors(flat, field):
    with pytest.raises(ConfigError, match=field) as info:
        CompressionSpec.from_flat(flat)
    assert "\n" not in str(info.value)


def test_more_groups_than_layers(tiny_bert):
    with pytest.raises(ConfigError, match=r"share.groups.*1\.\.2"):
        compress(tiny_bert, CompressionSpec.from_flat({"share.groups": 3}))


@pytest.mark.parametrize("init", ["mean", "first"])
def test_one_group_ties_every_parameter(tiny_bert, init):
    before = model_stats(tiny_bert)
    block = sum(p.numel() for p in _layers(tiny_bert)[0].parameters())
    original = [_layers(tiny_bert)[i].attention.self.query.weight.detach().clone() for i in (0, 1)]
    result = compress(tiny_bert, CompressionSpec.from_flat({"share.groups": 1, "share.init": init}))
    assert result.applied == ("share",)
    a, b = _layers(result.model)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert pa is pb, name
    expected = (original[0] + original[1]) / 2 if init == "mean" else original[0]
    torch.testing.assert_close(a.attention.self.query.weight.detach(), expected)
    # size counts the shared block once; the computation is the same two blocks
    assert result.stats.parameters == before.parameters - block
    assert result.stats.stored_bytes == before.stored_bytes - 4 * block


def test_composes_and_keeps_ties_through_bake(tiny_bert, tokenizer, small_task, check_onnx):
    spec = CompressionSpec.from_flat(
        {
            "share.groups": 1,
            "ffn.keep": 0.5,
            "prune.sparsity": 0.5,
            "quant.bits": 4,
            "quant.act_bits": "none",
            "recovery.steps": 2,
            "recovery.batch_size": 8,
        }
    )
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=2)
    again = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=2)
    assert result.applied == ("ffn", "share", "prune", "recovery", "quant(ptq)")
    a, b = _layers(result.model)
    assert a.intermediate.dense.weight is b.intermediate.dense.weight
    assert a.intermediate.dense.weight.shape == (64, 64)
    assert torch.equal(_logits(result.model, tokenizer), _logits(again.model, tokenizer))
    w = a.intermediate.dense.weight
    assert (w == 0).float().mean() == pytest.approx(0.5, abs=0.05)
    # one initializer for the shared weight, read by both blocks' MatMuls
    onnx_model = check_onnx(result.model)
    layers = json.loads({p.key: p.value for p in onnx_model.metadata_props}["paretoedge.layers"])
    init = {layer["module"]: layer["initializer"] for layer in layers}
    for part in ("attention.self.query", "intermediate.dense", "output.dense"):
        assert init[f"bert.encoder.layer.0.{part}"] == init[f"bert.encoder.layer.1.{part}"]
    assert len(_matmuls_reading(onnx_model.graph, init["bert.encoder.layer.0.output.dense"])) == 2


def _matmuls_reading(graph, name):
    """MatMul/Gemm nodes fed by ``name``, through Transpose/Identity/Cast."""
    found, frontier = set(), [name]
    while frontier:
        current = frontier.pop()
        for node in graph.node:
            if current not in node.input:
                continue
            if node.op_type in ("MatMul", "Gemm"):
                found.add(node.name)
            elif node.op_type in ("Transpose", "Identity", "Cast"):
                frontier.extend(node.output)
    return found


def test_exported_weights_are_counted_once(tiny_bert, check_onnx):
    import numpy as np
    from onnx import numpy_helper

    def weight_bytes(model):
        graph = check_onnx(model).graph
        return sum(numpy_helper.to_array(i).nbytes for i in graph.initializer)

    shared = compress(tiny_bert, CompressionSpec.from_flat({"share.groups": 1})).model
    block = sum(p.numel() for p in _layers(tiny_bert)[0].parameters()) * 4
    full, small = weight_bytes(tiny_bert), weight_bytes(shared)
    assert np.isclose(full - small, block, rtol=0.05)


def test_save_and_load_restore_the_ties(tiny_bert, tokenizer, tmp_path):
    result = compress(tiny_bert, CompressionSpec.from_flat({"share.groups": 1}))
    save_compressed(result.model, tmp_path / "m")
    loaded = load_compressed(tmp_path / "m")
    a, b = _layers(loaded)
    assert a.output.dense.weight is b.output.dense.weight
    torch.testing.assert_close(_logits(loaded, tokenizer), _logits(result.model, tokenizer))
    assert model_stats(loaded).stored_bytes == result.stats.stored_bytes
