"""Small synthetic BERT ONNX files (built with onnx.helper: no torch) for the kit's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from paretoedge.hardware_profiles._synthetic import BertShape, make_bert_onnx


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("kit")
    shapes = [
        BertShape(layers=1, hidden=32, heads=2, ffn=64, seq_len=8, vocab=100),
        BertShape(layers=2, hidden=64, heads=4, ffn=128, seq_len=16, vocab=100),
        BertShape(layers=2, hidden=64, heads=4, ffn=256, seq_len=32, vocab=100),
    ]
    return [make_bert_onnx(root / f"{s.tag}.onnx", s) for s in shapes]
