"""Sharing and hashing shrink stored bytes but not the work a device does (tiny-bert)."""

from __future__ import annotations

import pytest

from paretoedge.compression import CompressionSpec, compress, export_onnx
from paretoedge.hardware_profiles import predict

pytestmark = [pytest.mark.tvm, pytest.mark.slow]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from paretoedge.models import load_model

    model = load_model("tiny-bert", seed=0).eval()
    root = tmp_path_factory.mktemp("cost")
    out = {}
    for name, flat in (
        ("base", {}),
        ("shared", {"share.groups": 1}),
        ("hashed", {"hash.ratio": 0.25}),
    ):
        result = compress(model, CompressionSpec.from_flat(flat))
        out[name] = (result.stats, export_onnx(result.model, root / f"{name}.onnx", seq_len=32))
    return out


@pytest.mark.parametrize("device", ["rpi4", "stm32h7"])
def test_shared_layers_cost_the_same_work_and_fewer_bytes(exported, device):
    base = predict(exported["base"][1], device)
    shared = predict(exported["shared"][1], device)
    assert shared.latency_ms == pytest.approx(base.latency_ms, rel=0.02)
    assert sum(k.ops for k in shared.kernels) == pytest.approx(
        sum(k.ops for k in base.kernels), rel=1e-6
    )
    assert shared.weight_bytes < base.weight_bytes
    assert exported["shared"][0].stored_bytes < exported["base"][0].stored_bytes


@pytest.mark.parametrize("device", ["rpi4", "stm32h7"])
def test_hashed_layers_run_materialised(exported, device):
    base = predict(exported["base"][1], device)
    hashed = predict(exported["hashed"][1], device)
    assert hashed.latency_ms == pytest.approx(base.latency_ms, rel=0.02)
    assert hashed.weight_bytes == base.weight_bytes  # the runtime holds every virtual weight
    # stored: a quarter of the encoder's projection weights, plus seeds
    assert exported["hashed"][0].stored_bytes < exported["base"][0].stored_bytes
