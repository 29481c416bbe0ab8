"""DistillConfig validation, layer selection, student construction and distillation."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from paretoedge.compression._distill import (
    TEACHER_LAYERS_ATTR,
    DistillConfig,
    apply_distill,
    distill,
    distill_loss,
    make_student,
    select_layers,
)
from paretoedge.errors import ConfigError
from paretoedge.models import encoder_layers, load_tokenizer, num_layers
from paretoedge.tasks import Example
from paretoedge.training import finetune, make_batches


def _teacher(layers: int = 4, seed: int = 0) -> BertForSequenceClassification:
    tokenizer = load_tokenizer("tiny-bert")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    return BertForSequenceClassification(config).eval()


def _examples(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    words = ["good", "bad", "film", "the", "plot", "fine", "poor", "story", "was", "very"]
    return [Example(" ".join(rng.choices(words, k=8)), i % 2) for i in range(n)]


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"layers": 0}, "distill.layers"),
        ({"layers": ()}, "distill.layers"),
        ({"layers": (2, 1)}, "distill.layers"),
        ({"layers": (0, -1)}, "distill.layers"),
        ({"layers": True}, "distill.layers"),
        ({"steps": -1}, "distill.steps"),
        ({"temperature": 0.0}, "distill.temperature"),
        ({"soft_weight": -0.1}, "distill.soft_weight"),
        ({"hard_weight": float("nan")}, "distill.hard_weight"),
        ({"hidden_weight": -1}, "distill.hidden_weight"),
        ({"attention_weight": -1}, "distill.attention_weight"),
        ({"lr": 0}, "distill.lr"),
        ({"batch_size": 0}, "distill.batch_size"),
    ],
    ids=lambda v: str(v),
)
def test_config_rejects(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        DistillConfig(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_config_accepts_lists_as_tuples() -> None:
    config = DistillConfig(layers=[0, 3])  # type: ignore[arg-type]
    assert config.layers == (0, 3)
    assert hash(config) == hash(DistillConfig(layers=(0, 3)))


@pytest.mark.parametrize(
    ("layers", "depth", "expected"),
    [
        (4, 6, (0, 2, 3, 5)),
        (3, 6, (0, 3, 5)),
        (2, 6, (0, 5)),
        (1, 6, (0,)),
        (6, 6, tuple(range(6))),
        ((1, 4), 6, (1, 4)),
    ],
)
def test_select_layers(
    layers: int | tuple[int, ...], depth: int, expected: tuple[int, ...]
) -> None:
    assert select_layers(layers, depth) == expected


def test_more_layers_than_the_teacher_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        make_student(_teacher(4), 5)
    assert err.value.field == "distill.layers"
    assert "1..4" in str(err.value)
    with pytest.raises(ConfigError, match=r"0\.\.3"):
        make_student(_teacher(4), (0, 4))


def test_make_student_copies_chosen_layers_and_drops_parameters() -> None:
    teacher = _teacher(4)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    per_layer = _params(encoder_layers(teacher)[0])
    student = make_student(teacher, (1, 3))
    assert num_layers(student) == 2 and student.config.num_hidden_layers == 2
    assert _params(student) == _params(teacher) - 2 * per_layer
    assert getattr(student.config, TEACHER_LAYERS_ATTR) == [1, 3]
    for s_idx, t_idx in enumerate((1, 3)):
        s_state = encoder_layers(student)[s_idx].state_dict()
        t_state = encoder_layers(teacher)[t_idx].state_dict()
        assert all(torch.equal(s_state[k], t_state[k]) for k in t_state)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    # The teacher is untouched and does not share storage with the student.
    assert num_layers(teacher) == 4
    with torch.no_grad():
        encoder_layers(student)[0].output.dense.weight.add_(1.0)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    # A student of a student remembers the original teacher's indices.
    assert getattr(make_student(student, 1).config, TEACHER_LAYERS_ATTR) == [1]


def test_student_runs_and_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from paretoedge.models import load_model

    student = make_student(_teacher(4), 2)
    tokenizer = load_tokenizer("tiny-bert")
    batch = tokenizer(["good film"], return_tensors="pt")
    out = student(**batch, output_attentions=True, output_hidden_states=True)
    assert len(out.attentions) == 2 and len(out.hidden_states) == 3
    student.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert num_layers(again) == 2 and _params(again) == _params(student)


def test_distilbert_student() -> None:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=300, dim=32, n_layers=4, n_heads=2, hidden_dim=64)
    config._attn_implementation = "eager"
    teacher = DistilBertForSequenceClassification(config)
    student = make_student(teacher, 2)
    assert num_layers(student) == 2 and student.config.n_layers == 2
    assert _params(student) < _params(teacher)
    ids = torch.randint(0, 300, (2, 7))
    assert student(input_ids=ids).logits.shape == (2, 2)


def test_distillation_loss_decreases_and_is_deterministic() -> None:
    tokenizer = load_tokenizer("tiny-bert")
    teacher = _teacher(4)
    train = _examples(96, 0)
    finetune(teacher, tokenizer, train, max_steps=10, lr=1e-3, batch_size=16)
    config = DistillConfig(layers=2, steps=30, lr=2e-3, batch_size=16, hard_weight=0.0)
    probe = make_batches(tokenizer, _examples(64, 1), batch_size=64)[0]

    def loss_of(model: torch.nn.Module) -> float:
        model.eval()
        with torch.no_grad():
            loss, parts = distill_loss(model, teacher, probe, config=config, layer_map=(0, 3))
        assert set(parts) == {"kl", "hid", "att"}
        return float(loss)

    student = make_student(teacher, 2)
    # Perturb the copy so there is something to recover.
    with torch.no_grad():
        for p in student.bert.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    twin = make_student(teacher, 2)
    twin.load_state_dict(student.state_dict())
    start = loss_of(student)
    distill(student, teacher, tokenizer, train, config=config, seed=3)
    end = loss_of(student)
    assert end < 0.7 * start
    assert not teacher.training
    distill(twin, teacher, tokenizer, train, config=config, seed=3)
    assert all(
        torch.equal(a, b) for a, b in zip(student.parameters(), twin.parameters(), strict=True)
    )


def test_distill_validates_layer_map_and_uses_recorded_one() -> None:
    tokenizer = load_tokenizer("tiny-bert")
    teacher = _teacher(4)
    student = make_student(teacher, (0, 2))
    with pytest.raises(ConfigError, match="distill.layer_map"):
        distill(student, teacher, tokenizer, _examples(8, 0), steps=1, layer_map=(0, 9))
    with pytest.raises(ConfigError, match="distill.layer_map"):
        distill(student, teacher, tokenizer, _examples(8, 0), steps=1, layer_map=(0,))
    calls: list[int] = []
    distill(
        student,
        teacher,
        tokenizer,
        _examples(8, 0),
        steps=2,
        batch_size=4,
        after_step=lambda m: calls.append(1),
    )
    assert calls == [1, 1]


def test_apply_distill_builds_and_trains_a_student() -> None:
    tokenizer = load_tokenizer("tiny-bert")
    teacher = _teacher(4)
    untouched = make_student(teacher, 2)
    trained = apply_distill(
        teacher,
        DistillConfig(layers=2, steps=3, batch_size=8),
        tokenizer=tokenizer,
        examples=_examples(24, 0),
    )
    assert num_layers(trained) == 2 and not trained.training
    assert not all(
        torch.equal(a, b) for a, b in zip(trained.parameters(), untouched.parameters(), strict=True)
    )
    only_drop = apply_distill(
        teacher, DistillConfig(layers=2, steps=0), tokenizer=tokenizer, examples=_examples(4, 0)
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(only_drop.parameters(), untouched.parameters(), strict=True)
    )
