"""Early-exit candidates: expected latency over the exit distribution, space keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paretoedge.errors import ConfigError
from paretoedge.objectives import DeviceMetrics
from paretoedge.search import parse_config
from paretoedge.search._exits import expected_metrics, sidecar_path


def _m(latency: float, energy: float | None, peak: int) -> DeviceMetrics:
    return DeviceMetrics(latency_ms=latency, peak_memory_bytes=peak, energy_mj=energy)


def test_expected_latency_and_worst_case():
    per_exit = [_m(2.0, 1.0, 10), _m(3.0, 1.5, 12), _m(5.0, 2.5, 20)]
    m = expected_metrics(per_exit, [0.5, 0.25, 0.25])
    assert m.latency_ms == pytest.approx(0.5 * 2 + 0.25 * 3 + 0.25 * 5)
    assert m.energy_mj == pytest.approx(0.5 * 1 + 0.25 * 1.5 + 0.25 * 2.5)
    assert m.latency_worst_ms == 5.0
    assert m.peak_memory_bytes == 20  # the full prefix holds every weight
    assert expected_metrics(per_exit, [0, 0, 1]).latency_ms == 5.0
    assert expected_metrics([_m(1.0, None, 1)], [1.0]).energy_mj is None
    with pytest.raises(ValueError):
        expected_metrics(per_exit, [1.0])


def _doc(space: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "t",
        "model": "tiny-bert",
        "task": "sentiment",
        "space": space,
        "objectives": ["accuracy", "latency_ms"],
        "devices": ["rpi4"],
    }


def test_space_accepts_the_new_dimensions():
    # MiniLM (6 layers): an exit after layer 2 needs a model deeper than tiny-bert's 2 layers,
    # which the study now checks against the model's depth
    cfg = parse_config(
        {
            **_doc(
                {
                    "quant.bits": [32, 8],
                    "tensor.method": ["tt", "cp"],
                    "tensor.rank": [8, 32],
                    "attention.kind": ["softmax", "local", "linear"],
                    "attention.window": {"choices": [16, 32], "when": {"attention.kind": "local"}},
                    "exit.layers": ["1", "1,2"],
                    "exit.threshold": {"low": 0.6, "high": 0.95, "step": 0.05},
                }
            ),
            "model": "minilm",
        }
    )
    keys = [p.key for p in cfg.space]
    assert keys[0] == "quant.bits" and "exit.threshold" in keys


@pytest.mark.parametrize(
    ("space", "field"),
    [
        ({"tensor.method": ["svd"]}, "tensor.method"),
        ({"attention.kind": ["flash"]}, "attention.kind"),
        ({"exit.threshold": {"low": 0.5, "high": 1.5}}, "exit.threshold"),
    ],
    ids=["tensor", "attention", "exit"],
)
def test_space_values_are_checked_against_the_configs(space, field):
    with pytest.raises(ConfigError) as info:
        parse_config(_doc(space))
    assert f"space.{field}" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
@pytest.mark.tvm
def test_exit_candidate_scored_per_prefix(tmp_path):
    """tiny-bert with an exit after layer 1: accuracy with exits on, expected latency
    between the prefix's and the full model's, sidecar re-scoring for add-device."""
    from paretoedge.compression import ExitConfig, attach_exits
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.search._evaluator import predict_devices
    from paretoedge.search._exits import measure_exit_candidate
    from paretoedge.tasks import load_task

    model = load_model("tiny-bert", seed=0).eval()
    attach_exits(model, ExitConfig(layers="1", threshold=0.5, steps=0))
    task = load_task("sentiment", limit=32)
    onnx_path = tmp_path / "m.onnx"
    acc, metrics = measure_exit_candidate(
        model,
        load_tokenizer("tiny-bert"),
        task.validation,
        seq_len=16,
        onnx_path=onnx_path,
        devices=["rpi4"],
    )
    assert 0 <= acc <= 1 and metrics is not None
    doc = json.loads(sidecar_path(onnx_path).read_text())
    first, full = doc["devices"]["rpi4"]["prefix_latency_ms"]
    assert first < full
    f = doc["exit"]["fractions"]
    assert metrics["rpi4"].latency_ms == pytest.approx(f[0] * first + f[1] * full)
    assert metrics["rpi4"].latency_worst_ms == pytest.approx(full)
    again = predict_devices(onnx_path, ["rpi4"])
    assert again["rpi4"].latency_ms == pytest.approx(metrics["rpi4"].latency_ms)


@pytest.mark.slow
@pytest.mark.tvm
def test_tiny_bert_study_stores_the_worst_case_per_device(
    tmp_path, shared_home, capsys: pytest.CaptureFixture[str]
):
    """A real tiny-bert search with an exit after layer 1: every device's metrics row holds
    the expected latency and, beside it, the worst case of the sidecar (no exit taken);
    ``front`` and ``add-device`` carry it; the baseline without exits has none. With two
    classes the top probability is always >= 0.5, so threshold 0.5 sends every sample out
    at layer 1: the expected latency is the first prefix's, well below the worst case."""
    import yaml

    from paretoedge import storage as st
    from paretoedge.cli import main

    doc = {
        **_doc({"exit.threshold": [0.5]}),
        "name": "tiny-exit",
        "seed": 0,
        "seq_len": 32,
        "data": {"train_limit": 64, "validation_limit": 64, "test_limit": 32},
        "teacher": {"epochs": 0.05},
        "fixed": {"exit.layers": "1", "exit.steps": 4},
        "devices": ["rpi4", "stm32h7"],
        "budget": {"trials": 2},
        "baselines": ["teacher"],
    }
    cfg = tmp_path / "exit.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    url = f"sqlite:///{tmp_path / 'pe.db'}"
    assert main(["search", str(cfg), "--storage", url, "--no-progress", "--json"]) == 0
    capsys.readouterr()
    storage = st.open_storage(url)
    try:
        cands = {c.trial_number: c for c in st.list_candidates(storage, study="tiny-exit")}
        exit_trial = next(n for n, c in cands.items() if "exit.threshold" in c.flat)
        teacher = next(c for c in cands.values() if c.baseline_name == "teacher")
        (onnx,) = [
            Path(a.path)
            for a in st.list_artifacts(storage, candidate_id=cands[exit_trial].id)
            if a.kind == "onnx"
        ]
        side = json.loads(sidecar_path(onnx).read_text())["devices"]
        for device in ("rpi4", "stm32h7"):
            m = cands[exit_trial].metrics_for(device)
            assert m is not None and m.latency_worst_ms is not None
            assert m.latency_worst_ms == pytest.approx(side[device]["worst_latency_ms"])
            assert m.latency_worst_ms == pytest.approx(side[device]["prefix_latency_ms"][-1])
            assert m.latency_ms == pytest.approx(side[device]["expected_latency_ms"])
            assert m.latency_ms == pytest.approx(side[device]["prefix_latency_ms"][0])
            assert m.latency_ms < m.latency_worst_ms
            t = teacher.metrics_for(device)
            assert t is not None and t.latency_worst_ms is None
        # the full path of the exit model pays the exit head on top of the teacher's layers
        worst = cands[exit_trial].metrics_for("rpi4").latency_worst_ms  # type: ignore[union-attr]
        assert worst > teacher.metrics_for("rpi4").latency_ms  # type: ignore[union-attr]
        assert main(["front", "tiny-exit", "--device", "rpi4", "--storage", url,
                     "--format", "json"]) == 0  # fmt: skip
        rows = {r["trial"]: r for r in json.loads(capsys.readouterr().out)["entries"]}
        assert rows[exit_trial]["latency_worst_ms"] == pytest.approx(worst)
        assert rows[teacher.trial_number]["latency_worst_ms"] is None
        assert main(["add-device", "tiny-exit", "--device", "host", "--storage", url,
                     "--json"]) == 0  # fmt: skip
        capsys.readouterr()
        added = st.get_candidate(storage, study="tiny-exit", trial_number=exit_trial)
        host = added.metrics_for("host")
        side = json.loads(sidecar_path(onnx).read_text())["devices"]["host"]
        assert host is not None and host.latency_worst_ms == pytest.approx(side["worst_latency_ms"])
        assert host.latency_ms <= host.latency_worst_ms
    finally:
        storage.close()
