"""Every registered objective reads the right measurement; bad devices are named."""

from __future__ import annotations

import pytest

from paretoedge.errors import ConfigError, UnknownNameError
from paretoedge.objectives import OBJECTIVES, DeviceMetrics, Evaluation, get_objective

EV = Evaluation(
    accuracy=0.83,
    size_bytes=1234,
    parameters=10,
    sparsity=0.5,
    devices={
        "pi": DeviceMetrics(latency_ms=12.5, peak_memory_bytes=4096, energy_mj=3.25),
        "mcu": DeviceMetrics(
            latency_ms=900.0,
            peak_memory_bytes=300,
            energy_mj=None,
            flash_bytes=2_000_001,
            sram_bytes=250_000,
            feasible=False,
            violations=("flash",),
        ),
    },
)


@pytest.mark.parametrize(
    ("name", "device", "expected"),
    [
        ("accuracy", None, 0.83),
        ("size_bytes", None, 1234.0),
        ("latency_ms", "pi", 12.5),
        ("latency_ms", "mcu", 900.0),
        ("energy_mj", "pi", 3.25),
        ("peak_memory_bytes", "pi", 4096.0),
        ("flash_bytes", "mcu", 2_000_001.0),
        ("sram_bytes", "mcu", 250_000.0),
    ],
)
def test_values(name: str, device: str | None, expected: float) -> None:
    assert get_objective(name).value(EV, device) == expected


def test_registry_contract() -> None:
    assert set(OBJECTIVES.names()) >= {
        "accuracy",
        "latency_ms",
        "energy_mj",
        "size_bytes",
        "peak_memory_bytes",
    }
    for name in OBJECTIVES:
        cls = OBJECTIVES.get(name)
        assert cls.name == name and cls.direction in ("minimize", "maximize")
    assert not OBJECTIVES.get("accuracy").per_device
    assert OBJECTIVES.get("latency_ms").per_device
    assert OBJECTIVES.get("accuracy").direction == "maximize"


def test_errors_name_the_objective_and_device() -> None:
    with pytest.raises(UnknownNameError, match="latency"):
        get_objective("latency")
    with pytest.raises(ConfigError, match=r"latency_ms\[device\]"):
        get_objective("latency_ms").value(EV)
    with pytest.raises(ConfigError, match=r"latency_ms\[gpu\].*mcu, pi"):
        get_objective("latency_ms").value(EV, "gpu")
    with pytest.raises(ConfigError, match=r"flash_bytes\[pi\]"):
        get_objective("flash_bytes").value(EV, "pi")
    with pytest.raises(ConfigError, match=r"energy_mj\[mcu\]"):
        get_objective("energy_mj").value(EV, "mcu")


def test_device_metrics_from_any_object_with_the_fields() -> None:
    class Pred:
        latency_ms = 1.5
        peak_memory_bytes = 10
        energy_mj = 0.5
        flash_bytes = None
        sram_bytes = None
        feasible = True
        violations = ()

    m = DeviceMetrics.from_object(Pred())
    assert m == DeviceMetrics(latency_ms=1.5, peak_memory_bytes=10, energy_mj=0.5)
