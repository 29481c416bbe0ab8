"""Efficient attention (block-local, linear) replacing tiny-bert's softmax attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paretoedge.compression import (
    AttentionConfig,
    CompressionSpec,
    EfficientSelfAttention,
    compress,
    export_onnx,
    replace_attention,
)
from paretoedge.compression._attention import linear_attention, local_attention
from paretoedge.errors import ConfigError

ATT = "bert.encoder.layer.{}.attention.self"


def _qkv(n: int = 10, d: int = 4):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, d, generator=gen) for _ in range(3))
    keep = torch.ones(2, n)
    keep[1, 7:] = 0
    return q, k, v, keep


def _masked_softmax(q, k, v, allowed):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed, -1e9)
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("window", [1, 3, 4, 10, 32])
def test_local_attention_equals_a_block_banded_softmax(window):
    q, k, v, keep = _qkv()
    n = q.shape[2]
    w = min(window, n)
    block = torch.arange(n) // w
    band = (block[:, None] - block[None, :]).abs() <= 1
    allowed = band[None, None] & keep.bool()[:, None, None, :]
    ref = _masked_softmax(q, k, v, allowed)
    out = local_attention(q, k, v, keep, window)
    # padded queries (row 1 from position 7) may see no key at all: their output is unused
    assert torch.allclose(out[0], ref[0], atol=1e-5)
    assert torch.allclose(out[1, :, :7], ref[1, :, :7], atol=1e-5)


def test_linear_attention_equals_its_explicit_kernel_form():
    q, k, v, keep = _qkv()
    fq = torch.nn.functional.elu(q) + 1
    fk = torch.nn.functional.elu(k) + 1
    weights = (fq @ fk.transpose(-1, -2)) * keep[:, None, None, :]
    ref = (weights / weights.sum(-1, keepdim=True)) @ v
    assert torch.allclose(linear_attention(q, k, v, keep), ref, atol=1e-5)


def _inputs(seq: int = 40):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 5000, (2, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, seq // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _hidden(model, inputs):
    with torch.no_grad():
        return model.bert(**inputs).last_hidden_state


def test_wide_window_is_exact_and_narrow_window_changes_values(tiny_bert):
    x = _inputs()
    h0 = _hidden(tiny_bert, x)
    wide = compress(tiny_bert, CompressionSpec(attention=AttentionConfig("local", window=64)))
    assert torch.allclose(_hidden(wide.model, x), h0, atol=1e-5)
    narrow = compress(tiny_bert, CompressionSpec(attention=AttentionConfig("local", window=4)))
    assert narrow.applied == ("attention",)
    assert not torch.allclose(_hidden(narrow.model, x), h0, atol=1e-4)
    # the swap has no weights of its own: same parameters, same state-dict keys
    assert narrow.model.state_dict().keys() == tiny_bert.state_dict().keys()


@pytest.mark.parametrize("kind", ["local", "linear"])
def test_padded_keys_do_not_leak(tiny_bert, kind):
    replace_attention(tiny_bert, AttentionConfig(kind, window=4))
    x = _inputs()
    y = {k: v.clone() for k, v in x.items()}
    y["input_ids"][1, 20:] = 7  # change only padded tokens of row 1
    a, b = _hidden(tiny_bert, x), _hidden(tiny_bert, y)
    assert torch.allclose(a[1, :20], b[1, :20], atol=1e-5)


def test_chosen_layers_only(tiny_bert):
    assert replace_attention(tiny_bert, AttentionConfig("linear", layers="1")) == [1]
    assert isinstance(tiny_bert.get_submodule(ATT.format(1)), EfficientSelfAttention)
    assert not isinstance(tiny_bert.get_submodule(ATT.format(0)), EfficientSelfAttention)
    assert replace_attention(tiny_bert, AttentionConfig("softmax")) == []


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"kind": "flash"}, "attention.kind", "softmax"),
        ({"window": 0}, "attention.window", "integer >= 1"),
        ({"layers": "a"}, "attention.layers", "integers >= 0"),
        ({"layers": -1}, "attention.layers", "integers >= 0"),
    ],
    ids=["kind", "window", "layers-text", "layers-negative"],
)
def test_bad_values_name_field_and_allowed(kwargs, field, allowed):
    with pytest.raises(ConfigError) as info:
        AttentionConfig(**kwargs)
    msg = str(info.value)
    assert field in msg and allowed in msg and "\n" not in msg


def test_layer_the_model_lacks(tiny_bert):
    with pytest.raises(ConfigError, match=r"attention\.layers.*0\.\.1"):
        replace_attention(tiny_bert, AttentionConfig("local", layers=(0, 5)))


@pytest.mark.parametrize("kind", ["local", "linear"])
def test_onnx_matches_pytorch(tiny_bert, tmp_path, kind):
    import onnxruntime as ort

    from paretoedge.compression._export import INPUT_NAMES, example_inputs

    with torch.no_grad():
        tiny_bert.classifier.weight.mul_(200.0)  # logits sensitive to hidden-state changes
    model = compress(tiny_bert, CompressionSpec(attention=AttentionConfig(kind, window=8))).model
    path = export_onnx(model, tmp_path / "m.onnx", seq_len=40)
    x = example_inputs(model, batch=1, seq_len=40)
    with torch.no_grad():
        ref = model(**x).logits.numpy()
    out = ort.InferenceSession(str(path)).run(None, {k: x[k].numpy() for k in INPUT_NAMES})[0]
    assert np.allclose(out, ref, atol=1e-4), (out, ref)


def test_composes_with_heads_and_quant_deterministically(tiny_bert):
    spec = CompressionSpec.from_flat(
        {
            "heads.keep": 0.5,
            "attention.kind": "local",
            "attention.window": 8,
            "quant.bits": 8,
            "quant.act_bits": "none",
        }
    )
    a = compress(tiny_bert, spec, seed=0)
    b = compress(tiny_bert, spec, seed=0)
    assert a.applied == ("heads", "attention", "quant(ptq)")
    att = a.model.get_submodule(ATT.format(0))
    assert isinstance(att, EfficientSelfAttention) and att.num_attention_heads == 2
    x = _inputs()
    assert torch.equal(_hidden(a.model, x), _hidden(b.model, x))
    assert CompressionSpec.from_flat(spec.to_flat()) == spec


def test_recovery_distills_without_attention_maps(tiny_bert, tokenizer, small_task):
    spec = CompressionSpec.from_flat(
        {
            "attention.kind": "linear",
            "attention.layers": "0",
            "recovery.steps": 2,
            "recovery.batch_size": 8,
        }
    )
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=0)
    assert result.applied == ("attention", "recovery")
    before = tiny_bert.get_submodule(ATT.format(0)).query.weight
    assert not torch.equal(result.model.get_submodule(ATT.format(0)).query.weight, before)


@pytest.mark.parametrize("value", ["all", " ALL", "", (), ["all"]], ids=repr)
def test_all_means_every_layer(tiny_bert, value):
    config = AttentionConfig("linear", layers=value)
    assert config.layers == ()
    assert replace_attention(tiny_bert, config) == [0, 1]
    spec = CompressionSpec.from_flat({"attention.kind": "linear", "attention.layers": "all"})
    assert spec.attention == config and CompressionSpec.from_flat(spec.to_flat()) == spec
