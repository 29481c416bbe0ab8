"""Tensor decomposition (tensorly CP/Tucker/TT) of tiny-bert's embeddings and Q/K/V."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paretoedge.compression import (
    CompressionSpec,
    FactoredEmbedding,
    StackedProjection,
    TensorConfig,
    compress,
    export_onnx,
    model_stats,
    tensor_decompose,
)
from paretoedge.compression._tensor import decompose, reconstruct, split_dim
from paretoedge.errors import ConfigError

pytest.importorskip("tensorly")

METHODS = ["cp", "tucker", "tt"]
Q = "bert.encoder.layer.{}.attention.self.{}"


def _inputs(seq: int = 12) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 5000, (2, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, seq // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _hidden(model) -> torch.Tensor:
    with torch.no_grad():
        return model.bert(**_inputs()).last_hidden_state


def test_split_dim():
    assert split_dim(384) == (16, 24)
    assert split_dim(64) == (8, 8)
    assert split_dim(7) == (1, 7)


@pytest.mark.parametrize("method", METHODS)
def test_decompose_recovers_an_exactly_low_rank_tensor(method):
    rng = np.random.RandomState(0)
    a, b, c = rng.randn(6, 2), rng.randn(5, 2), rng.randn(4, 2)
    x = np.einsum("ir,jr,kr->ijk", a, b, c)  # CP rank 2, so Tucker/TT rank <= 2 per mode
    f = decompose(x, method, 2)
    assert np.allclose(reconstruct(method, f), x, atol=1e-5)
    low = decompose(x, method, 1)
    assert not np.allclose(reconstruct(method, low), x, atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_attention_projections_stacked_and_factored(tiny_bert, method):
    before = model_stats(tiny_bert).parameters
    h0 = _hidden(tiny_bert)
    done = tensor_decompose(tiny_bert, TensorConfig(method=method, rank=4, targets="attention"))
    assert done == {"embeddings": 0, "attention": 2}
    for i in range(2):
        q, k, v = (tiny_bert.get_submodule(Q.format(i, p)) for p in ("query", "key", "value"))
        assert all(isinstance(m, StackedProjection) for m in (q, k, v))
        assert k._shared()[0] is q.down and v._shared()[1] is q.up  # one Down/Up per layer
        assert q.down.weight.shape == (q.down.out_features, 64)
    # 3 x 64 x 64 weights per layer -> shared factors + small mids
    assert model_stats(tiny_bert).parameters < before - 2 * 3 * 64 * 64 // 2
    h1 = _hidden(tiny_bert)
    assert h1.shape == h0.shape
    assert not torch.allclose(h1, h0, atol=1e-4)


def test_full_rank_tucker_and_tt_leave_the_model_unchanged(tiny_bert):
    before = model_stats(tiny_bert).parameters
    done = tensor_decompose(tiny_bert, TensorConfig(method="tt", rank=64, targets="attention"))
    assert done["attention"] == 0  # factors would not be smaller: layer kept
    assert model_stats(tiny_bert).parameters == before


def test_tt_embedding_is_a_gather_and_a_matmul_chain(tiny_bert):
    emb = tiny_bert.bert.embeddings.word_embeddings.weight.detach().clone()
    tensor_decompose(tiny_bert, TensorConfig(method="tt", rank=8, targets="embeddings"))
    fe = tiny_bert.bert.embeddings.word_embeddings
    assert isinstance(fe, FactoredEmbedding)
    assert fe.first.shape == (30522, 8) and fe.g2.shape == (8, 8, 8) and fe.g3.shape == (8, 8)
    ids = torch.tensor([[5, 1000, 29999]])
    with torch.no_grad():
        rows = fe(ids)
        full = fe.weight
    assert rows.shape == (1, 3, 64)
    assert torch.allclose(rows[0], full[ids[0]], atol=1e-6)
    err = (full - emb).norm() / emb.norm()
    assert 0 < float(err) < 1.0
    assert model_stats(tiny_bert).parameters < 30522 * 64 // 2


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"method": "svd"}, "tensor.method", "cp"),
        ({"rank": 0}, "tensor.rank", "integer >= 1"),
        ({"rank": 2.5}, "tensor.rank", "integer >= 1"),
        ({"targets": "ffn"}, "tensor.targets", "embeddings, attention"),
        ({"targets": ()}, "tensor.targets", "embeddings, attention"),
    ],
    ids=["method", "rank0", "rank-float", "target", "empty"],
)
def test_bad_values_name_field_and_allowed(kwargs, field, allowed):
    with pytest.raises(ConfigError) as info:
        TensorConfig(**kwargs)
    msg = str(info.value)
    assert field in msg and allowed in msg and "\n" not in msg


def test_spec_round_trip():
    spec = CompressionSpec.from_flat({"tensor.method": "cp", "tensor.rank": "8"})
    assert spec.tensor == TensorConfig(method="cp", rank=8)
    assert CompressionSpec.from_flat(spec.to_flat()) == spec


def _sharp(model):
    """Scale the classifier so logits react to small hidden-state differences."""
    with torch.no_grad():
        model.classifier.weight.mul_(200.0)
    return model


@pytest.mark.parametrize("method", METHODS)
def test_onnx_matches_pytorch(tiny_bert, tmp_path, method):
    import onnxruntime as ort

    from paretoedge.compression._export import INPUT_NAMES, example_inputs

    targets = "embeddings,attention" if method == "tt" else "attention"
    spec = CompressionSpec.from_flat(
        {"tensor.method": method, "tensor.rank": 4, "tensor.targets": targets}
    )
    model = compress(_sharp(tiny_bert), spec).model
    path = export_onnx(model, tmp_path / "m.onnx", seq_len=16)
    x = example_inputs(model, batch=1, seq_len=16)
    with torch.no_grad():
        ref = model(**x).logits.numpy()
    out = ort.InferenceSession(str(path)).run(None, {k: x[k].numpy() for k in INPUT_NAMES})[0]
    assert np.allclose(out, ref, atol=1e-4), (out, ref)
    import onnx

    inits = {i.name for i in onnx.load(str(path)).graph.initializer}
    assert any("query.down" in n for n in inits)
    assert not any("attention.self.key.weight" in n for n in inits)


def test_deterministic_and_composes_with_prune_and_quant(tiny_bert):
    flat = {
        "tensor.method": "tucker",
        "tensor.rank": 4,
        "tensor.targets": "attention",
        "prune.sparsity": 0.5,
        "prune.scope": "layer",
        "quant.bits": 8,
        "quant.act_bits": "none",
    }
    spec = CompressionSpec.from_flat(flat)
    a = compress(tiny_bert, spec, seed=0)
    b = compress(tiny_bert, spec, seed=0)
    assert a.applied == ("tensor", "prune", "quant(ptq)")
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    down = a.model.get_submodule(Q.format(0, "query")).down.weight
    assert float((down == 0).float().mean()) == pytest.approx(0.5, abs=0.02)
    assert a.stats.stored_bytes < compress(tiny_bert, spec.replace(tensor=None)).stats.stored_bytes
