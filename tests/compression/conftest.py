"""Fixtures of the compression tests: tiny-bert (random 2-layer BERT) and a few examples."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _tiny_bert_session():
    from paretoedge.models import load_model, load_tokenizer

    return load_model("tiny-bert", seed=0), load_tokenizer("tiny-bert")


@pytest.fixture
def tiny_bert(_tiny_bert_session):
    """A fresh copy of tiny-bert per test (tests modify models in place)."""
    import copy

    return copy.deepcopy(_tiny_bert_session[0]).eval()


@pytest.fixture(scope="session")
def tokenizer(_tiny_bert_session):
    return _tiny_bert_session[1]


@pytest.fixture(scope="session")
def small_task():
    from paretoedge.tasks import load_task

    return load_task("sentiment", limit=64)


@pytest.fixture(scope="session")
def batches(tokenizer, small_task):
    from paretoedge.training import make_batches

    return make_batches(tokenizer, small_task.train[:32], batch_size=16, max_length=32)


@pytest.fixture
def check_onnx(tokenizer, tmp_path):
    """``check_onnx(model) -> onnx.ModelProto``: export ``model``, run it in onnxruntime
    and assert its logits match PyTorch's on two padded sentences."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from paretoedge.compression import export_onnx

    def check(model, *, atol: float = 1e-4):
        seq = 32
        path = export_onnx(model, tmp_path / "model.onnx", seq_len=seq, batch=2)
        enc = tokenizer(
            ["a fine film", "dull, long and far too loud"],
            padding="max_length",
            max_length=seq,
            return_tensors="pt",
        )
        feeds = {k: enc[k].to(torch.int64) for k in ("input_ids", "attention_mask")}
        feeds["token_type_ids"] = torch.zeros_like(feeds["input_ids"])
        with torch.no_grad():
            expected = model(**feeds).logits.numpy()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(["logits"], {k: v.numpy() for k, v in feeds.items()})[0]
        np.testing.assert_allclose(got, expected, atol=atol, rtol=1e-3)
        return onnx.load(str(path))

    return check
