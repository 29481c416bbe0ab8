"""tiny-bert as ExecuTorch programs (fp32 and int8, XNNPACK) run in ExecuTorch's runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "executorch", reason="executorch is not installed: pip install 'paretoedge[executorch]'"
)


@pytest.mark.slow
def test_tiny_bert_programs_match_pytorch_in_the_executorch_runtime(tmp_path: Path) -> None:
    from paretoedge.exporters import (
        check_runtime,
        example_feeds,
        executorch_runner,
        export_executorch,
        torch_logits,
    )
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.tasks import load_task
    from paretoedge.training import make_batches

    model = load_model("tiny-bert").eval()
    tokenizer = load_tokenizer("tiny-bert")
    task = load_task("sentiment")
    examples = task.test[:64]
    feeds = example_feeds(tokenizer, examples, 32)
    reference = torch_logits(model, feeds)
    labels = [e.label for e in examples]
    calibration = make_batches(tokenizer, task.train[:8], batch_size=8, max_length=32)

    fp32 = export_executorch(model, tmp_path / "model.pte", seq_len=32)
    check = check_runtime(file=fp32.name, runtime="executorch", int8=False,
                          run=executorch_runner(fp32), feeds=feeds, labels=labels,
                          reference=reference)  # fmt: skip
    assert check.passed and check.agreement == 1.0
    assert check.max_abs_logit_diff < 1e-4

    int8 = export_executorch(
        model, tmp_path / "model.int8.pte", seq_len=32, int8=True, calibration=calibration
    )
    q = check_runtime(file=int8.name, runtime="executorch", int8=True,
                      run=executorch_runner(int8), feeds=feeds, labels=labels,
                      reference=reference)  # fmt: skip
    assert q.passed, q
    # really int8: different arithmetic (logits move), and the program is an XNNPACK one
    assert 0 < q.max_abs_logit_diff < 0.1
    assert b"XnnpackBackend" in int8.read_bytes()
    assert model.training is False and fp32.stat().st_size > 0
