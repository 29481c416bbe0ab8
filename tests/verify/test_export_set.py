"""``paretoedge export-set``: structures spanning a tiny-bert study's space, a manifest,
and files the measuring kit times into a CSV that calibrate reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paretoedge.cli import main
from paretoedge.errors import ConfigError

STUDY: dict[str, Any] = {
    "name": "tiny-set",
    "model": "tiny-bert",
    "task": "sentiment",
    "seed": 0,
    "seq_len": 16,
    "data": {"train_limit": 32, "validation_limit": 16, "test_limit": 16},
    "teacher": {"epochs": 0.01},
    "space": {
        "heads.keep": [1.0, 0.5],
        "ffn.keep": [1.0, 0.75, 0.5],
        "quant.bits": [32, 8],
        "prune.sparsity": {"low": 0.0, "high": 0.5, "step": 0.25},
    },
    "objectives": ["accuracy", "latency_ms", "size_bytes"],
    "devices": ["host-ort"],
    "sampler": {"name": "random"},
    "budget": {"trials": 2},
    "recovery": {"steps": 2},
    "baselines": ["teacher", "int8"],
}


def _config() -> Any:
    from paretoedge.search import parse_config

    return parse_config(STUDY)


def test_selection_covers_every_value_and_starts_at_the_teacher() -> None:
    from paretoedge.calibration_set import select_structures

    points = select_structures(_config(), 6)
    assert len(points) == 6 and len({json.dumps(p, sort_keys=True) for p in points}) == 6
    assert points[0] == {"heads.keep": 1.0, "ffn.keep": 1.0, "quant.bits": 32, "prune.sparsity": 0}
    # farthest-point sampling reaches the opposite corner next
    assert points[1] == {"heads.keep": 0.5, "ffn.keep": 0.5, "quant.bits": 8, "prune.sparsity": 0.5}
    for key, values in (
        ("heads.keep", {1.0, 0.5}),
        ("ffn.keep", {1.0, 0.75, 0.5}),
        ("quant.bits", {32, 8}),
        ("prune.sparsity", {0.0, 0.25, 0.5}),
    ):
        assert {p[key] for p in points} == values, key
    with pytest.raises(ConfigError, match="--n"):
        select_structures(_config(), 1)


@pytest.fixture
def study_url(tmp_path: Path) -> str:
    from paretoedge import storage as st

    cfg = _config()
    url = f"sqlite:///{tmp_path / 'pe.db'}"
    with st.open_storage(url) as storage:
        st.create_study(
            storage,
            name=cfg.name,
            config=cfg.to_dict(),
            devices=list(cfg.devices),
            objectives=[
                {"name": o.name, "device": o.device, "direction": o.direction}
                for o in cfg.objectives
            ],
            seed=cfg.seed,
        )
    return url


@pytest.mark.slow
def test_export_set_writes_a_spanning_set_that_measure_times(
    study_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from paretoedge.hardware_profiles import read_measurements

    out = tmp_path / "set"
    args = ["export-set", "tiny-set", "--device", "host-ort", "--out", str(out), "--n", "6"]
    assert main([*args, "--storage", study_url, "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["n"] == 6 and manifest["runtime"] == "onnxruntime"
    assert manifest["threads"] == 1 and manifest["seq_len"] == 16
    assert all(not c["missing"] for c in manifest["coverage"].values())
    files = sorted(out.glob("s*.onnx"))
    assert [f.name for f in files] == [s["file"] for s in manifest["structures"]]
    # structure and size really vary: the teacher is the largest, the corner the smallest
    spread = manifest["spread"]
    assert spread["linear_macs"]["ratio"] > 1.5 and spread["weight_bytes"]["ratio"] > 2
    first, second = manifest["structures"][:2]
    assert first["linear_macs"] == spread["linear_macs"]["max"]
    assert second["weight_bytes"] < first["weight_bytes"] and second["spec"]["quant.bits"] == 8
    assert "recovery.steps" not in first["spec"]  # nothing is trained
    # an 8-bit structure is the int8 QDQ file onnxruntime deploys
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / second["file"])).graph.node}
    assert "QuantizeLinear" in ops or "DequantizeLinear" in ops
    # the kit times the set and calibrate's reader takes its CSV
    csv_path = out / "timings.csv"
    measure = ["measure", *map(str, files), "--repeats", "3", "--warmup", "1"]
    assert main([*measure, "--max-spread", "100", "--out", str(csv_path)]) == 0
    rows = read_measurements(csv_path)
    assert [p.name for p, _ in rows] == [f.name for f in files]
    assert all(ms > 0 for _, ms in rows)


def test_export_set_errors_are_one_line(study_url: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    base = ["export-set", "tiny-set", "--out", str(tmp_path / "x"), "--storage", study_url]
    assert main([*base, "--device", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main([*base, "--device", "host-ort", "--n", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--n" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("device", "step"),
    [("host-ort", "--runtime onnxruntime --threads 1"), ("mali-g76", "no tvm-default adapter")],
)
def test_manifest_coverage_spread_and_steps(device: str, step: str) -> None:
    from paretoedge.calibration_set import SetMember, build_manifest
    from paretoedge.hardware_profiles import load_profile

    members = [
        SetMember("s00.onnx", {"heads.keep": 1.0, "ffn.keep": 1.0}, {}, 100, 400, 1000),
        SetMember("s01.onnx", {"heads.keep": 0.5, "ffn.keep": 0.5}, {}, 50, 100, 300),
    ]
    manifest = build_manifest("tiny-set", load_profile(device), _config(), members)
    assert manifest["coverage"]["heads.keep"] == {"covered": [0.5, 1.0], "missing": []}
    assert manifest["coverage"]["ffn.keep"]["missing"] == [0.75]
    assert manifest["coverage"]["quant.bits"]["missing"] == [32, 8]
    assert manifest["spread"]["weight_bytes"] == {"min": 100, "max": 400, "ratio": 4.0}
    assert step in manifest["steps"][0]
    assert manifest["steps"][2] == "here: paretoedge add-device tiny-set --device MYBOARD"
