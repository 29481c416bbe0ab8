"""Fixtures: small BERT ONNX files built once per session, keyed by their shape."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from paretoedge.hardware_profiles._synthetic import BertShape, make_bert_onnx

MakeOnnx = Callable[..., Path]


@pytest.fixture(scope="session")
def make_onnx(tmp_path_factory: pytest.TempPathFactory) -> MakeOnnx:
    """``make_onnx(bits=8, act_bits=8, sparsity=0.0, **shape)`` -> path (cached per session)."""
    root = tmp_path_factory.mktemp("onnx")
    made: dict[tuple, Path] = {}

    def make(
        *,
        bits: int = 32,
        act_bits: int | None = None,
        sparsity: float = 0.0,
        seed: int = 0,
        **shape: int,
    ) -> Path:
        s = BertShape(**shape)
        key = (s, bits, act_bits, sparsity, seed)
        if key not in made:
            name = f"{s.tag}-b{bits}-a{act_bits}-s{sparsity}-r{seed}.onnx"
            made[key] = make_bert_onnx(
                root / name, s, bits=bits, act_bits=act_bits, sparsity=sparsity, seed=seed
            )
        return made[key]

    return make


@pytest.fixture
def tiny_onnx(make_onnx: MakeOnnx) -> Path:
    return make_onnx()
