"""Device metrics from the structure (no training) agree with the trained candidate's.

Real pipeline on tiny-bert: compression, ONNX export and the hardware models of two
devices (an MCU with flash/SRAM limits among them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paretoedge.compression import CompressionSpec
from paretoedge.search import PipelineEvaluator, parse_config

pytestmark = [pytest.mark.slow, pytest.mark.tvm]


@pytest.mark.parametrize(
    "flat",
    [
        {"prune.sparsity": 0.5, "quant.bits": 4, "quant.scheme": "cluster"},
        {"ffn.keep": 0.5, "heads.keep": 0.5, "quant.bits": 8},
    ],
    ids=["prune-int4-cluster", "ffn-heads-int8"],
)
def test_structural_metrics_match_the_trained_candidate(
    tmp_path: Path, shared_home: Path, flat: dict
) -> None:
    config = parse_config(
        {
            "name": "cheap",
            "model": "tiny-bert",
            "task": "sentiment",
            "seq_len": 32,
            "data": {"train_limit": 64, "validation_limit": 32, "test_limit": 32},
            "teacher": {"epochs": 0.05},
            "space": {"quant.bits": [32, 8]},
            "objectives": ["accuracy", "latency_ms", "size_bytes"],
            "devices": ["rpi4", "stm32h7"],
        }
    )
    full = CompressionSpec.from_flat({**flat, "recovery.steps": 3})
    ev = PipelineEvaluator(config)
    cheap = ev.structural_metrics(full, config.devices)
    trained = ev.evaluate(full, devices=config.devices, onnx_path=tmp_path / "m.onnx").evaluation
    assert cheap.size_bytes == trained.size_bytes
    assert cheap.parameters == trained.parameters
    for d in config.devices:
        a, b = cheap.devices[d], trained.devices[d]
        assert a.latency_ms == pytest.approx(b.latency_ms, rel=1e-9)
        assert (a.peak_memory_bytes, a.flash_bytes, a.sram_bytes, a.feasible) == (
            b.peak_memory_bytes,
            b.flash_bytes,
            b.sram_bytes,
            b.feasible,
        )
    assert ev.structural_metrics(full, config.devices) == cheap  # memoised per structure
