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


def _config():  # noqa: ANN202
    """tiny-bert on two devices, an MCU with flash/SRAM limits among them."""
    return parse_config(
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
    config = _config()
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


def test_variants_of_one_architecture_share_one_export(
    shared_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bit-width and sparsity variants of one architecture are built from one compression
    prefix and costed on the graph of the first one exported (their own weight facts
    applied), and every metric equals what compressing and exporting each one gives."""
    config = _config()
    flats = [
        {"ffn.keep": 0.5, "heads.keep": 0.5, "prune.sparsity": s, **q}
        for s in (0.0, 0.3, 0.6)
        for q in (
            {},
            {"quant.bits": 8},
            {"quant.bits": 4, "quant.scheme": "uniform"},
            {"quant.bits": 4, "quant.scheme": "cluster"},
        )
    ]
    specs = [CompressionSpec.from_flat(f) for f in flats]
    exports: list[int] = []
    original = PipelineEvaluator._export_prepared

    def counted(self, model):  # noqa: ANN001, ANN202
        exports.append(1)
        return original(self, model)

    monkeypatch.setattr(PipelineEvaluator, "_export_prepared", counted)
    shared_ev = PipelineEvaluator(config)
    shared = [shared_ev.structural_metrics(s, config.devices) for s in specs]
    # two exports: the fp32 graph (fp32, 4-bit uniform and cluster: the export bakes the
    # fake quantisers and codebooks into the weights) and the 8-bit one (activation
    # quantisers on; their calibrated zero points, pooled by value by the exporter, do not
    # change the graph), each shared by the three sparsities
    assert len(exports) == 2, f"{len(exports)} exports for {len(specs)} variants"

    apart_ev = PipelineEvaluator(config, builder=shared_ev.builder)
    monkeypatch.setattr(apart_ev, "GRAPHS_KEPT", 0)  # every candidate exported ...
    monkeypatch.setattr(apart_ev, "PREFIXES_KEPT", 0)  # ... and compressed from the teacher
    for flat, spec, a in zip(flats, specs, shared, strict=True):
        b = apart_ev.structural_metrics(spec, config.devices)
        assert (a.size_bytes, a.parameters) == (b.size_bytes, b.parameters), flat
        for d in config.devices:
            x, y = a.devices[d], b.devices[d]
            assert x.latency_ms == pytest.approx(y.latency_ms, rel=1e-12), (flat, d)
            assert (x.peak_memory_bytes, x.flash_bytes, x.sram_bytes, x.violations) == (
                y.peak_memory_bytes,
                y.flash_bytes,
                y.sram_bytes,
                y.violations,
            ), (flat, d)
    # the variants do differ: a shared graph did not flatten them into one prediction
    # (fp32, 8-bit and 4-bit cost apart on rpi4; its dense kernels gain nothing from sparsity)
    assert len({round(m.devices["rpi4"].latency_ms, 9) for m in shared}) >= 3
