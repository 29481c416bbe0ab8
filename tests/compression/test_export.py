"""ONNX export: static shapes, metadata, onnxruntime agrees with PyTorch, int8 QDQ runs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from paretoedge.compression import CompressionSpec, compress, export_onnx, model_stats
from paretoedge.errors import ConfigError

SEQ = 32


def _feeds(tokenizer, texts=("a fine film", "dull, long and far too loud")):
    enc = tokenizer(list(texts), padding="max_length", max_length=SEQ, return_tensors="pt")
    return {
        k: enc[k][:1].to(torch.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
    }


def _torch_logits(model, feeds):
    with torch.no_grad():
        return model(**feeds).logits.numpy()


def _ort_logits(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {k: v.numpy() for k, v in feeds.items()})[0]


def _meta(path):
    model = onnx.load(str(path))
    return model, {p.key: p.value for p in model.metadata_props}


def _initializer_feeds(model, init_name, module):
    """The initializer reaches a MatMul/Gemm/Gather named after ``module``."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    frontier, seen = [init_name], set()
    while frontier:
        name = frontier.pop()
        for node in consumers.get(name, []):
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in ("MatMul", "Gemm", "Gather"):
                scope = node.name.strip("/").split("/")
                if scope[0] == "model" and ".".join(scope[1:-1]) == module:
                    return True
            elif node.op_type in ("Transpose", "DequantizeLinear", "Identity", "Cast"):
                frontier.extend(node.output)
    return False


@pytest.mark.parametrize(
    "flat",
    [
        {},
        {"prune.sparsity": 0.5, "quant.bits": 8, "quant.act_bits": "none"},
        {
            "heads.keep": 0.5,
            "ffn.keep": 0.5,
            "lowrank.rank": 8,
            "lowrank.targets": "attention,embeddings",
            "quant.bits": 4,
            "quant.scheme": "cluster",
        },
        {"quant.bits": 8},
    ],
    ids=["fp32", "sparse-int8-weights", "structured-lowrank-cluster4", "int8-act"],
)
def test_export_matches_pytorch_and_carries_metadata(
    tiny_bert, tokenizer, small_task, tmp_path, flat
):
    spec = CompressionSpec.from_flat(flat)
    model = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task).model
    path = export_onnx(model, tmp_path / "m.onnx", seq_len=SEQ)
    onnx.checker.check_model(str(path))
    onnx_model, meta = _meta(path)
    for inp in onnx_model.graph.input:
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        assert dims == [1, SEQ] and inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [o.name for o in onnx_model.graph.output] == ["logits"]
    assert meta["paretoedge.batch"] == "1" and meta["paretoedge.seq_len"] == str(SEQ)
    assert CompressionSpec.from_json(meta["paretoedge.spec"]) == spec
    layers = json.loads(meta["paretoedge.layers"])
    stats = model_stats(model)
    assert {entry["module"] for entry in layers} == set(stats.layer_bits)
    inits = {i.name: i for i in onnx_model.graph.initializer}
    for entry in layers:
        assert entry["bits"] == stats.layer_bits[entry["module"]]
        assert entry["initializer"] in inits, entry
        assert _initializer_feeds(onnx_model, entry["initializer"], entry["module"]), entry
        weight = onnx.numpy_helper.to_array(inits[entry["initializer"]])
        module = model.get_submodule(entry["module"])
        assert weight.size == module.weight.numel()
        assert entry["sparsity"] == pytest.approx(float((weight == 0).mean()), abs=1e-6)
    feeds = _feeds(tokenizer)
    np.testing.assert_allclose(
        _ort_logits(path, feeds), _torch_logits(model, feeds), atol=1e-4, rtol=1e-3
    )


def test_structured_pruning_changes_onnx_shapes(tiny_bert, tokenizer, small_task, tmp_path):
    spec = CompressionSpec.from_flat({"heads.keep": 0.5, "ffn.keep": 0.25})
    model = compress(tiny_bert, spec).model
    onnx_model, meta = _meta(export_onnx(model, tmp_path / "m.onnx", seq_len=SEQ))
    inits = {i.name: i.dims for i in onnx_model.graph.initializer}
    assert list(inits["bert.encoder.layer.0.attention.self.query.weight"]) == [64, 32]
    assert list(inits["bert.encoder.layer.0.intermediate.dense.weight"]) == [64, 32]


def test_int8_qdq_export_runs_in_onnxruntime(tiny_bert, tokenizer, small_task, batches, tmp_path):
    model = compress(
        tiny_bert,
        CompressionSpec.from_flat({"quant.bits": 8}),
        tokenizer=tokenizer,
        task=small_task,
    ).model
    fp32 = export_onnx(model, tmp_path / "m.onnx", seq_len=SEQ)
    int8 = export_onnx(
        model, tmp_path / "m.int8.onnx", seq_len=SEQ, int8_qdq=True, calibration=batches
    )
    onnx_model, meta = _meta(int8)
    ops = {n.op_type for n in onnx_model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    int8_inits = [i for i in onnx_model.graph.initializer if i.data_type in eight_bit]
    assert sum(int(np.prod(i.dims)) for i in int8_inits) > 0.9 * model_stats(model).parameters
    assert int8.stat().st_size < fp32.stat().st_size / 2.5
    layers = json.loads(meta["paretoedge.layers"])
    assert all(e["bits"] == 8 and e["initializer"].endswith("_quantized") for e in layers)
    feeds = _feeds(tokenizer)
    out = _ort_logits(int8, feeds)
    ref = _torch_logits(model, feeds)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=0.1)


def test_export_errors(tiny_bert, tmp_path):
    with pytest.raises(ConfigError, match="export.calibration"):
        export_onnx(tiny_bert, tmp_path / "x.onnx", int8_qdq=True)
    with pytest.raises(ConfigError, match="export.seq_len"):
        export_onnx(tiny_bert, tmp_path / "x.onnx", seq_len=10_000)


def test_distilbert_family_compresses_and_exports(tmp_path):
    """DistilBERT names its parts differently (q_lin, ffn.lin1); it has no token types,
    so its ONNX takes input_ids and attention_mask only."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(
        vocab_size=1000,
        dim=64,
        n_layers=2,
        n_heads=4,
        hidden_dim=128,
        max_position_embeddings=128,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(config).eval()
    spec = CompressionSpec.from_flat(
        {
            "heads.keep": 0.5,
            "ffn.keep": 0.5,
            "lowrank.rank": 8,
            "prune.sparsity": 0.5,
            "quant.bits": 8,
            "quant.act_bits": "none",
        }
    )
    result = compress(model, spec)
    assert result.applied == ("heads", "ffn", "lowrank", "prune", "quant(ptq)")
    assert result.stats.parameters < model_stats(model).parameters
    assert result.model.distilbert.transformer.layer[0].attention.n_heads == 2
    path = export_onnx(result.model, tmp_path / "d.onnx", seq_len=16)
    ids = torch.randint(1, 1000, (1, 16), generator=torch.Generator().manual_seed(0))
    feeds = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    out = session.run(["logits"], {k: v.numpy() for k, v in feeds.items()})[0]
    with torch.no_grad():
        ref = result.model(**feeds).logits.numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-3)
    layers = json.loads(_meta(path)[1]["paretoedge.layers"])
    assert all(e["initializer"] for e in layers)
