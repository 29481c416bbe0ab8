"""The measuring kit: timing, noisy-run refusal, CSV round trip into calibrate, imports."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from paretoedge.cli import main
from paretoedge.errors import ConfigError, DataError
from paretoedge.hardware_profiles import read_measurements
from paretoedge.measure import (
    CSV_COLUMNS,
    MeasureOptions,
    NoisyMeasurementError,
    RuntimeMissingError,
    check_spread,
    get_runtime,
    measure_files,
    summarize,
    time_callable,
    write_csv,
)


def test_summarize_median_quantiles_and_spread() -> None:
    t = summarize([10.0, 11.0, 9.0, 10.0, 30.0], warmup=2)
    assert t.median_ms == 10.0 and t.min_ms == 9.0 and t.max_ms == 30.0
    assert t.p10_ms == pytest.approx(9.4) and t.p90_ms == pytest.approx(22.4)
    assert t.spread == pytest.approx((22.4 - 9.4) / 10.0)
    assert t.repeats == 5 and t.warmup == 2


def test_time_callable_warms_up_then_times_each_run() -> None:
    calls: list[int] = []
    t = time_callable(lambda: calls.append(1), repeats=4, warmup=3)
    assert len(calls) == 7 and t.repeats == 4 and t.warmup == 3 and t.median_ms >= 0


def test_noisy_timings_are_refused_with_the_way_out() -> None:
    steady = summarize([10.0, 10.1, 9.9, 10.0, 10.05])
    check_spread("a.onnx", steady, 0.25)
    noisy = summarize([10.0, 25.0, 9.0, 40.0, 10.0])
    with pytest.raises(NoisyMeasurementError, match=r"a\.onnx.*--max-spread"):
        check_spread("a.onnx", noisy, 0.25)
    check_spread("a.onnx", noisy, 10.0)  # overridden


def test_measure_refuses_a_noisy_file_and_writes_nothing(
    onnx_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.csv"
    # a spread above 0 always exceeds a threshold this small: the refusal path, for real
    code = main(
        ["measure", str(onnx_files[0]), "--repeats", "5", "--max-spread", "1e-9", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "too noisy" in err and "--max-spread" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--runtime", "tvm"], "--runtime"),
        (["--threads", "0"], "--threads"),
        (["--repeats", "2"], "--repeats"),
        (["--max-spread", "0"], "--max-spread"),
        (["--cpus", "a,b"], "--cpus"),
    ],
    ids=["runtime", "threads", "repeats", "max-spread", "cpus"],
)
def test_bad_options_are_one_line_exit_2(
    onnx_files: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    needle: str,
) -> None:
    code = main(["measure", str(onnx_files[0]), "--out", str(tmp_path / "t.csv"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1


def test_missing_file_and_wrong_runtime_for_suffix(onnx_files: list[Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        measure_files([tmp_path / "none.onnx"], MeasureOptions(repeats=3))
    with pytest.raises(ConfigError, match=r"loads \.tflite"):
        measure_files(onnx_files[:1], MeasureOptions(runtime="tflite", repeats=3))


@pytest.mark.parametrize("runtime", ["executorch", "tflite"])
def test_runtimes_not_installed_name_what_to_install(runtime: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    mod = {"executorch": "executorch", "tflite": "ai_edge_litert"}[runtime]
    try:
        __import__(mod)
    except ImportError:
        pass
    else:
        pytest.skip(f"{mod} is installed here")
    path = tmp_path / ("m.pte" if runtime == "executorch" else "m.tflite")
    path.write_bytes(b"\0")
    with pytest.raises(RuntimeMissingError, match="pip install"):
        get_runtime(runtime).load(path, threads=1)


def test_csv_round_trips_into_calibrate(onnx_files: list[Path], tmp_path: Path) -> None:
    opts = MeasureOptions(runtime="onnxruntime", threads=1, repeats=5, warmup=1, max_spread=50.0)
    results = measure_files(onnx_files, opts)
    out = write_csv(results, tmp_path / "sub" / "timings.csv")
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["runtime"] for r in rows] == ["onnxruntime"] * 3
    assert all(int(r["threads"]) == 1 and int(r["repeats"]) == 5 for r in rows)
    parsed = read_measurements(out)  # the reader `paretoedge calibrate` uses
    assert [p.resolve() for p, _ in parsed] == [f.resolve() for f in onnx_files]
    for (_, ms), r in zip(parsed, results, strict=True):
        assert ms == pytest.approx(r.timing.median_ms, rel=1e-5)
    # the biggest model (4x the FFN, 2x the sequence) takes longer than the smallest
    assert parsed[2][1] > parsed[0][1]


@pytest.mark.tvm
def test_measured_csv_calibrates_a_profile(
    onnx_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "timings.csv"
    args = ["measure", *map(str, onnx_files), "--repeats", "5", "--max-spread", "50"]
    assert main([*args, "--out", str(out)]) == 0
    capsys.readouterr()
    profile = tmp_path / "board.yaml"
    code = main(
        [
            "calibrate",
            "--device",
            "host-ort",
            "--measurements",
            str(out),
            "--name",
            "board",
            "--output",
            str(profile),
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3 and profile.is_file()


def test_measure_imports_no_tvm_optuna_or_torch(onnx_files: list[Path], tmp_path: Path) -> None:
    """Both entry points, in a fresh interpreter: the CLI command and python -m."""
    files = ", ".join(repr(str(f)) for f in onnx_files[:2])
    code = f"""
import sys
from paretoedge.cli import main
rc = main(["measure", {files}, "--repeats", "3", "--max-spread", "50",
           "--out", {str(tmp_path / "a.csv")!r}])
assert rc == 0, rc
from paretoedge.measure.__main__ import main as kit
b_csv = {str(tmp_path / "b.csv")!r}
assert kit([{files}, "--repeats", "3", "--max-spread", "50", "--out", b_csv]) == 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tvm", "optuna", "torch", "ray"))
print("HEAVY", heavy)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    assert (tmp_path / "a.csv").is_file() and (tmp_path / "b.csv").is_file()


def test_python_m_entry_point_errors_are_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "paretoedge.measure",
            str(tmp_path / "none.onnx"),
            "--out",
            str(tmp_path / "t.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
