"""Model aliases, local directories and the helpers over encoder layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paretoedge.errors import ConfigError, UnknownNameError
from paretoedge.models import (
    MODEL_ALIASES,
    encoder_layers,
    load_model,
    load_tokenizer,
    num_layers,
)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_aliases_are_the_documented_ones() -> None:
    assert set(MODEL_ALIASES) == {"minilm", "tiny-bert"}


def test_tiny_bert_shape_and_eager_attention() -> None:
    model = load_model("tiny-bert", num_labels=3)
    tokenizer = load_tokenizer("tiny-bert")
    assert model.config.hidden_size == 64
    assert model.config.num_attention_heads == 4
    assert model.config.intermediate_size == 128
    assert num_layers(model) == 2
    assert model.config.vocab_size == len(tokenizer)
    assert model.config._attn_implementation == "eager"
    batch = tokenizer(["a fine film", "dull"], padding=True, return_tensors="pt")
    out = model(**batch, output_attentions=True, output_hidden_states=True)
    assert out.logits.shape == (2, 3)
    assert len(out.attentions) == 2 and out.attentions[0].shape[1] == 4
    assert len(out.hidden_states) == 3


def test_tiny_bert_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_model("tiny-bert", seed=1)
    after = torch.rand(3)
    b = load_model("tiny-bert", seed=1)
    c = load_model("tiny-bert", seed=2)
    assert torch.equal(expected, after)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_local_directory_round_trip(tmp_path: Path) -> None:
    model = load_model("tiny-bert")
    model.save_pretrained(tmp_path)
    load_tokenizer("tiny-bert").save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert _params(again) == _params(model)
    assert torch.equal(again.classifier.weight, model.classifier.weight)
    assert again.config._attn_implementation == "eager"
    assert len(load_tokenizer(str(tmp_path))) == len(load_tokenizer("tiny-bert"))


def test_distilbert_family_is_supported(tmp_path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=200, dim=32, n_layers=3, n_heads=2, hidden_dim=64)
    DistilBertForSequenceClassification(config).save_pretrained(tmp_path)
    model = load_model(str(tmp_path))
    assert num_layers(model) == 3
    assert encoder_layers(model) is model.distilbert.transformer.layer


def test_unknown_alias_names_the_field_and_aliases() -> None:
    with pytest.raises(UnknownNameError) as err:
        load_model("bert-huge")
    assert "model='bert-huge'" in str(err.value)
    assert "minilm" in str(err.value) and "tiny-bert" in str(err.value)


@pytest.mark.parametrize("kind", ["missing", "no-config", "wrong-family"])
def test_bad_directories(tmp_path: Path, kind: str) -> None:
    if kind == "missing":
        target = tmp_path / "nope"
    elif kind == "no-config":
        target = tmp_path
    else:
        from transformers import GPT2Config

        GPT2Config(n_layer=1, n_embd=16, n_head=2).save_pretrained(tmp_path)
        target = tmp_path
    with pytest.raises(ConfigError) as err:
        load_model(str(target))
    assert "model=" in str(err.value)
    assert "minilm" in str(err.value) or "BERT" in str(err.value)


def test_num_labels_validated() -> None:
    with pytest.raises(ConfigError, match="num_labels"):
        load_model("tiny-bert", num_labels=1)


@pytest.mark.slow
def test_minilm_loads_offline_with_a_new_head() -> None:
    model = load_model("minilm", num_labels=2)
    assert num_layers(model) == 6
    assert model.config.hidden_size == 384
    assert model.classifier.out_features == 2
    assert 22_000_000 < _params(model) < 23_000_000
