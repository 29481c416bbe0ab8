"""Calibration recovers known factors; bad measurement files fail with one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from paretoedge.cli import main
from paretoedge.errors import ConfigError, DataError
from paretoedge.hardware_profiles import (
    fit_profile,
    kendall_tau,
    load_profile,
    mape,
    parse_profile,
    predict,
    read_measurements,
)

SHAPES = [
    {},
    {"layers": 1},
    {"hidden": 32, "heads": 2, "ffn": 64},
    {"ffn": 64},
    {"keep_heads": 2},
    {"seq_len": 64},
    {"layers": 3, "hidden": 96, "heads": 4, "ffn": 384},
    {"seq_len": 16, "ffn": 256},
]


def test_metrics() -> None:
    assert mape([110.0, 90.0], [100.0, 100.0]) == pytest.approx(10.0)
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)


def test_fit_rejects_too_few_rows() -> None:
    with pytest.raises(ConfigError, match="measurements"):
        fit_profile(load_profile("host"), [], [])


@pytest.mark.tvm
def test_calibrate_recovers_synthetic_device(
    make_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_profile("host")
    truth = dataclasses.replace(
        base,
        kernel_scale={
            k: v * f
            for (k, v), f in zip(base.kernel_scale.items(), (3.0, 0.5, 2.0, 1.5, 4.0), strict=True)
        },
        launch_overhead_us=base.launch_overhead_us * 2 + 1,
        call_overhead_us=50.0,
    )
    csv = tmp_path / "m.csv"
    lines = ["onnx,latency_ms"]
    for shape in SHAPES:
        path = make_onnx(**shape)
        lines.append(f"{path},{predict(path, truth).latency_ms:.6f}")
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "mine.yaml"
    code = main(
        [
            "calibrate",
            "--device",
            "host",
            "--measurements",
            str(csv),
            "--name",
            "mine",
            "--output",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fit_mape_pct"] < 2.0
    assert result["fit_kendall_tau"] > 0.95
    fitted = parse_profile(out.read_text(), str(out))
    assert fitted.name == "mine" and fitted.calibration["fitted_on"] == len(SHAPES)
    for shape in SHAPES[:3]:
        path = make_onnx(**shape)
        assert predict(path, fitted).latency_ms == pytest.approx(
            predict(path, truth).latency_ms, rel=0.03
        )


def test_bad_measurement_files(
    tmp_path: Path, tiny_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_measurements(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("model,ms\nx,1\n")
    with pytest.raises(DataError, match="onnx,latency_ms"):
        read_measurements(bad)
    bad.write_text(f"onnx,latency_ms\n{tiny_onnx},fast\n{tiny_onnx},2\n")
    with pytest.raises(DataError, match="latency_ms='fast'"):
        read_measurements(bad)
    bad.write_text(f"onnx,latency_ms\n{tiny_onnx},-1\n{tiny_onnx},2\n")
    with pytest.raises(DataError, match="positive"):
        read_measurements(bad)
    bad.write_text("onnx,latency_ms\nmissing.onnx,1\nmissing.onnx,2\n")
    assert main(["calibrate", "--device", "host", "--measurements", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing.onnx" in err and len(err.strip().splitlines()) == 1
