"""int8 quantisation of the fine-tuned bundled teacher keeps its accuracy (slow).

Uses the cached minilm teacher (``shared_home``; built by ``get_teacher`` on first use).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def teacher_and_task(shared_home):
    from paretoedge.tasks import load_task
    from paretoedge.teachers import ensure_teacher

    teacher, tokenizer, info = ensure_teacher("minilm", "sentiment", progress=False)
    return teacher, tokenizer, info, load_task("sentiment")


def test_int8_within_one_point_of_teacher(teacher_and_task, tmp_path):
    import onnxruntime as ort

    from paretoedge.compression import CompressionSpec, compress, export_onnx
    from paretoedge.training import evaluate, make_batches

    teacher, tokenizer, info, task = teacher_and_task
    # the teacher's accuracies were measured when it was fine-tuned (same evaluate call)
    reference = {"validation": info.validation_accuracy, "test": info.test_accuracy}
    result = compress(
        teacher, CompressionSpec.from_flat({"quant.bits": 8}), tokenizer=tokenizer, task=task
    )
    assert result.applied == ("quant(ptq)", "calibrate")
    assert result.stats.stored_bytes < 0.3 * 4 * result.stats.parameters
    for split in ("validation", "test"):
        examples = task.split(split)
        ref = reference[split]
        acc = evaluate(result.model, tokenizer, examples)
        assert acc >= ref - 0.01, (split, acc, ref)

    # the real int8 QDQ file runs in onnxruntime and stays close too
    calibration = make_batches(tokenizer, task.train[:64], batch_size=16)
    path = export_onnx(
        result.model, tmp_path / "m.int8.onnx", int8_qdq=True, calibration=calibration
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    examples = task.validation
    correct = 0
    for ex in examples:
        enc = tokenizer(
            ex.text, padding="max_length", truncation=True, max_length=64, return_tensors="np"
        )
        feeds = {
            k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
        }
        correct += int(session.run(["logits"], feeds)[0].argmax() == ex.label)
    ref = reference["validation"]
    assert correct / len(examples) >= ref - 0.02, (correct / len(examples), ref)
