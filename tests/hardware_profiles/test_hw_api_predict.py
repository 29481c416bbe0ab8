"""``paretoedge.predict``: one graph preparation, every device scored like ``predict``."""

from __future__ import annotations

from pathlib import Path

import pytest

import paretoedge
from paretoedge.errors import ConfigError, UnknownNameError
from paretoedge.hardware_profiles import predict as predict_one

pytestmark = pytest.mark.tvm


def test_predict_many_devices_matches_one_by_one(tiny_onnx: Path) -> None:
    many = paretoedge.predict(tiny_onnx, ["host-ort", "rpi4"])
    assert list(many) == ["host-ort", "rpi4"]
    for device, p in many.items():
        one = predict_one(tiny_onnx, device)
        assert p.latency_ms == pytest.approx(one.latency_ms)
        assert p.peak_memory_bytes == one.peak_memory_bytes
    assert many["rpi4"].latency_ms != many["host-ort"].latency_ms


def test_predict_rejects_unknown_device_before_reading(tiny_onnx: Path) -> None:
    with pytest.raises(UnknownNameError, match="rpi5"):
        paretoedge.predict(tiny_onnx, ["rpi4", "rpi5"])
    with pytest.raises(ConfigError, match="devices"):
        paretoedge.predict(tiny_onnx, [])
