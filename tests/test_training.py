"""Batching, evaluation, fine-tuning, determinism and the teacher cache, on tiny-bert."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from paretoedge.errors import ConfigError, DataError
from paretoedge.models import load_model, load_tokenizer
from paretoedge.tasks import Example
from paretoedge.teachers import ensure_teacher, get_teacher, teacher_info, teacher_key
from paretoedge.training import evaluate, finetune, make_batches

_POSITIVE = ["great", "wonderful", "superb", "delightful", "brilliant", "moving"]
_NEGATIVE = ["awful", "boring", "dreadful", "tedious", "clumsy", "dull"]
_FILLER = ["the", "film", "was", "plot", "acting", "story", "really", "quite", "and", "a"]


def _synthetic(n: int, seed: int) -> list[Example]:
    """Sentences whose label is carried by one sentiment word among filler words."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        words = rng.choices(_FILLER, k=6)
        words.insert(rng.randrange(7), rng.choice(_POSITIVE if label else _NEGATIVE))
        out.append(Example(" ".join(words), label))
    return out


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer("tiny-bert")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_make_batches_shapes_and_order(tokenizer) -> None:  # type: ignore[no-untyped-def]
    examples = _synthetic(10, 0)
    batches = make_batches(tokenizer, examples, batch_size=4, max_length=6)
    assert [len(b["labels"]) for b in batches] == [4, 4, 2]
    for batch in batches:
        assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
        assert batch["input_ids"].shape[1] <= 6
        assert batch["input_ids"].shape == batch["attention_mask"].shape
        assert int(batch["token_type_ids"].abs().sum()) == 0
    assert [int(x) for x in batches[0]["labels"]] == [e.label for e in examples[:4]]
    shuffled = make_batches(tokenizer, examples, batch_size=10, shuffle=True, seed=3)
    again = make_batches(tokenizer, examples, batch_size=10, shuffle=True, seed=3)
    other = make_batches(tokenizer, examples, batch_size=10, shuffle=True, seed=4)
    assert torch.equal(shuffled[0]["input_ids"], again[0]["input_ids"])
    assert not torch.equal(shuffled[0]["input_ids"], other[0]["input_ids"])
    with pytest.raises(ConfigError, match="batch_size"):
        make_batches(tokenizer, examples, batch_size=0)


def test_evaluate_is_accuracy_and_restores_mode(tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = load_model("tiny-bert")
    examples = _synthetic(40, 1)
    model.train()
    accuracy = evaluate(model, tokenizer, examples, batch_size=16)
    assert model.training
    model.eval()
    with torch.no_grad():
        batch = make_batches(tokenizer, examples, batch_size=40)[0]
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        ).logits
    expected = float((logits.argmax(-1) == batch["labels"]).float().mean())
    assert accuracy == pytest.approx(expected)
    with pytest.raises(DataError):
        evaluate(model, tokenizer, [])


def test_finetune_learns(tokenizer) -> None:  # type: ignore[no-untyped-def]
    train, held_out = _synthetic(256, 2), _synthetic(100, 3)
    model = load_model("tiny-bert", seed=0)
    before = evaluate(model, tokenizer, held_out)
    finetune(model, tokenizer, train, epochs=3, lr=2e-3, batch_size=16, seed=5)
    after = evaluate(model, tokenizer, held_out)
    assert after >= 0.9 > before + 0.2


def test_finetune_is_deterministic_and_keeps_caller_rng(tokenizer) -> None:  # type: ignore[no-untyped-def]
    train = _synthetic(64, 2)
    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    models = []
    for seed in (5, 5, 6):
        model = load_model("tiny-bert", seed=0)
        finetune(model, tokenizer, train, max_steps=4, lr=1e-3, batch_size=16, seed=seed)
        models.append(model)
    assert torch.equal(state, torch.random.get_rng_state())
    assert _same_weights(models[0], models[1])
    assert not _same_weights(models[0], models[2])
    assert not _same_weights(models[0], load_model("tiny-bert", seed=0))


def test_finetune_max_steps_and_callback(tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = load_model("tiny-bert")
    calls: list[int] = []
    finetune(
        model,
        tokenizer,
        _synthetic(64, 4),
        epochs=10,
        max_steps=3,
        batch_size=8,
        after_step=lambda m: calls.append(1),
    )
    assert len(calls) == 3
    assert not model.training


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"max_steps": 0}, "max_steps")],
)
def test_finetune_rejects_bad_arguments(tokenizer, kwargs, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=field):
        finetune(load_model("tiny-bert"), tokenizer, _synthetic(8, 0), **kwargs)


def _task_file(path: Path) -> Path:
    rows = _synthetic(120, 9)
    path.write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in rows))
    return path


def test_teacher_is_cached_and_reused(tmp_path: Path, _isolated_home: Path) -> None:
    task = str(_task_file(tmp_path / "toy.jsonl"))
    assert teacher_info("tiny-bert", task, epochs=2) is None
    model, tokenizer, info = ensure_teacher("tiny-bert", task, epochs=2, progress=False)
    assert not info.reused
    assert info.path.parent == _isolated_home / "teachers"
    assert info.path.name == teacher_key("tiny-bert", task, epochs=2)
    assert 0.0 <= info.test_accuracy <= 1.0 and info.train_wall_s > 0
    record = json.loads((info.path / "paretoedge_teacher.json").read_text())
    assert record["test_accuracy"] == info.test_accuracy
    assert [p.name for p in info.path.parent.iterdir() if p.name.startswith(".")] == []

    again, _, info2 = ensure_teacher("tiny-bert", task, epochs=2, progress=False)
    assert info2.reused and info2.test_accuracy == info.test_accuracy
    assert _same_weights(model, again)
    from paretoedge.tasks import load_task

    assert evaluate(again, tokenizer, load_task(task).test) == pytest.approx(info.test_accuracy)
    teacher, _ = get_teacher("tiny-bert", task, epochs=2, progress=False)
    assert _same_weights(model, teacher)
    # Another seed is another cache entry.
    assert teacher_key("tiny-bert", task, seed=1, epochs=2) != info.path.name


def test_incomplete_cache_entry_is_rebuilt(tmp_path: Path, _isolated_home: Path) -> None:
    task = str(_task_file(tmp_path / "toy2.jsonl"))
    entry = _isolated_home / "teachers" / teacher_key("tiny-bert", task, epochs=1)
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{}")  # a half-written entry without its record
    _, _, info = ensure_teacher("tiny-bert", task, epochs=1, progress=False)
    assert not info.reused and (entry / "paretoedge_teacher.json").is_file()


def test_cache_key_follows_file_content(tmp_path: Path) -> None:
    task = _task_file(tmp_path / "toy3.jsonl")
    first = teacher_key("tiny-bert", str(task))
    task.write_text(task.read_text().replace("film", "movie"))
    assert teacher_key("tiny-bert", str(task)) != first


def test_finetune_cli_builds_then_reuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from paretoedge.cli import main

    task = str(_task_file(tmp_path / "cli.jsonl"))
    argv = ["finetune", "--model", "tiny-bert", "--task", task, "--epochs", "1", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["reused"] is False and second["reused"] is True
    assert second["test_accuracy"] == first["test_accuracy"]
    assert second["wall_s"] > 0
    assert main(["finetune", "--model", "tiny-bert", "--task", task]) == 0
    assert "reused" in capsys.readouterr().out
    assert main(["finetune", "--model", "nope", "--task", task]) == 2
    assert "model='nope'" in capsys.readouterr().err
