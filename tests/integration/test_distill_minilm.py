"""Distillation on the real teacher: the bundled MiniLM fine-tuned on ``sentiment``.

A 4-layer student built from the fine-tuned 6-layer teacher is trained for the same short
budget twice: on the labels alone, and by distillation (soft targets, hidden states and
attention maps). Distillation must give the better test accuracy. The teacher comes from
the persistent cache (``shared_home``); if it is missing it is fine-tuned first (minutes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paretoedge.compression._distill import DistillConfig, apply_distill, make_student
from paretoedge.models import num_layers
from paretoedge.tasks import load_task
from paretoedge.teachers import get_teacher, teacher_info
from paretoedge.training import evaluate, finetune

STEPS = 100


@pytest.mark.slow
def test_distilled_student_beats_label_only_training(shared_home: Path) -> None:
    teacher, tokenizer = get_teacher("minilm", "sentiment", progress=False)
    info = teacher_info("minilm", "sentiment")
    assert info is not None and info.test_accuracy > 0.8
    data = load_task("sentiment")
    config = DistillConfig(layers=4, steps=STEPS)

    plain = make_student(teacher, config.layers)
    finetune(
        plain,
        tokenizer,
        data.train,
        max_steps=STEPS,
        lr=config.lr,
        batch_size=config.batch_size,
        seed=0,
    )
    distilled = apply_distill(teacher, config, tokenizer=tokenizer, examples=data.train, seed=0)

    assert num_layers(distilled) == 4
    teacher_params = sum(p.numel() for p in teacher.parameters())
    assert sum(p.numel() for p in distilled.parameters()) < teacher_params
    plain_accuracy = evaluate(plain, tokenizer, data.test)
    distilled_accuracy = evaluate(distilled, tokenizer, data.test)
    print(
        f"teacher {info.test_accuracy:.4f}, 4-layer label-only {plain_accuracy:.4f}, "
        f"4-layer distilled {distilled_accuracy:.4f} ({STEPS} steps)"
    )
    assert distilled_accuracy > plain_accuracy
