"""The latency/memory model on real TVM builds for every profile's target."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from paretoedge.cli import main
from paretoedge.errors import LoweringError
from paretoedge.hardware_profiles import cache_dir, load_profile, predict, profile_names

pytestmark = pytest.mark.tvm


@pytest.mark.parametrize("device", ["rpi4", "pixel-a76", "mali-g76", "stm32h7", "host"])
def test_every_target_builds_and_predicts(device: str, tiny_onnx: Path) -> None:
    pred = predict(tiny_onnx, device)
    assert pred.latency_ms > 0 and pred.energy_mj > 0
    call_ms = load_profile(device).call_overhead_us / 1e3
    assert pred.kernels
    assert sum(k.latency_ms for k in pred.kernels) + call_ms == pytest.approx(pred.latency_ms)
    assert pred.weight_bytes > 0 and pred.activation_bytes > 0
    assert pred.peak_memory_bytes == pred.weight_bytes + pred.activation_bytes
    assert any(k.kind == "matmul" for k in pred.kernels)
    if load_profile(device).kind == "mcu":
        assert pred.flash_bytes is not None and pred.flash_bytes > pred.weight_bytes
        assert pred.sram_bytes == pred.activation_bytes
    else:
        assert pred.flash_bytes is None
    assert pred.feasible


def test_all_bundled_names_predict_on_same_cached_structure(tiny_onnx: Path) -> None:
    # host and host-ort share a target: the second is a cache hit
    predict(tiny_onnx, "host")
    assert predict(tiny_onnx, "host-ort").cache_hit
    assert set(profile_names()) >= {"host", "host-ort"}


@pytest.mark.parametrize("device", ["rpi4", "host"])
@pytest.mark.parametrize(
    ("small", "big"),
    [
        ({"layers": 1}, {"layers": 2}),
        ({"hidden": 32, "heads": 2, "ffn": 64}, {}),
        ({"ffn": 64}, {}),
        ({"keep_heads": 2}, {}),
        ({}, {"seq_len": 64}),
    ],
    ids=["layers", "hidden", "ffn", "heads", "seq_len"],
)
def test_latency_monotone_in_shape(device: str, small: dict, big: dict, make_onnx) -> None:
    a = predict(make_onnx(**small), device)
    b = predict(make_onnx(**big), device)
    assert a.latency_ms < b.latency_ms
    assert a.peak_memory_bytes <= b.peak_memory_bytes


@pytest.mark.parametrize("device", ["rpi4", "pixel-a76", "stm32h7"])
def test_fewer_bits_predicted_faster(device: str, make_onnx) -> None:
    fp32 = predict(make_onnx(), device)
    int8 = predict(make_onnx(bits=8, act_bits=8), device)
    int4 = predict(make_onnx(bits=4, act_bits=8), device)
    weight_only = predict(make_onnx(bits=8), device)
    assert int8.latency_ms < fp32.latency_ms
    # weight-only quantization moves fewer bytes but keeps fp32 compute: it helps only where
    # the matmuls are memory-bound (the Pi 4's 4 GB/s LPDDR4)
    assert weight_only.latency_ms <= fp32.latency_ms
    if device == "rpi4":
        assert weight_only.latency_ms < fp32.latency_ms
    assert int4.weight_bytes < int8.weight_bytes < fp32.weight_bytes
    assert any(k.dtype == "int8" for k in int8.kernels)
    assert not any(k.dtype == "int8" for k in weight_only.kernels)
    # metadata changes no graph structure: all four share one build
    assert int8.cache_hit and int4.cache_hit and weight_only.cache_hit


def test_sparsity_pays_only_past_threshold(make_onnx) -> None:
    profile = load_profile("rpi4")
    dense = predict(make_onnx(), profile)
    low = predict(make_onnx(sparsity=profile.sparse_threshold / 2), profile)
    high = predict(make_onnx(sparsity=0.9), profile)
    assert low.latency_ms == pytest.approx(dense.latency_ms)
    assert high.latency_ms < dense.latency_ms
    assert high.weight_bytes < dense.weight_bytes


def test_mcu_flags_model_over_flash_and_sram(make_onnx) -> None:
    big = predict(make_onnx(hidden=256, heads=4, ffn=1024, vocab=4000, seq_len=128), "stm32h7")
    assert not big.feasible
    assert any(v.startswith("flash") for v in big.violations)
    assert any(v.startswith("sram") for v in big.violations)
    small = predict(make_onnx(), "stm32h7")
    assert small.feasible


def test_cache_hit_on_second_call(tiny_onnx: Path) -> None:
    first = predict(tiny_onnx, "stm32h7", use_cache=False)
    second = predict(tiny_onnx, "stm32h7")
    third = predict(tiny_onnx, "stm32h7")
    assert not first.cache_hit and third.cache_hit
    assert third.latency_ms == pytest.approx(first.latency_ms)
    assert third.peak_memory_bytes == first.peak_memory_bytes
    assert second.structure_hash == first.structure_hash
    assert any(cache_dir().glob("*.json"))
    assert not any(cache_dir().glob("*.tmp"))


def test_qdq_int8_matmul_costed_as_int8(tmp_path: Path) -> None:
    import numpy as np
    from onnx import TensorProto, helper
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    inits = [
        nh.from_array(rng.integers(-127, 127, (256, 256)).astype(np.int8), "w_q"),
        nh.from_array(np.array(0.01, np.float32), "s"),
        nh.from_array(np.array(0, np.int8), "z"),
        nh.from_array(rng.standard_normal((256, 256)).astype(np.float32), "w_f"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 256])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 256])

    def save(nodes, name):
        g = helper.make_graph(nodes, name, [x], [y], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(m, str(tmp_path / f"{name}.onnx"))
        return tmp_path / f"{name}.onnx"

    qdq = save(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
            helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w"]),
            helper.make_node("MatMul", ["xd", "w"], ["y"]),
        ],
        "qdq",
    )
    fp = save([helper.make_node("MatMul", ["x", "w_f"], ["y"])], "fp")
    q, f = predict(qdq, "rpi4"), predict(fp, "rpi4")
    mm = [k for k in q.kernels if k.kind == "matmul"]
    assert [k.dtype for k in mm] == ["int8"]
    assert mm[0].latency_ms < [k for k in f.kernels if k.kind == "matmul"][0].latency_ms


def test_onnx_tvm_cannot_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")
    g = helper.make_graph(
        [node],
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    path = tmp_path / "bad.onnx"
    onnx.save(m, str(path))
    with pytest.raises(LoweringError):
        predict(path, "host")
    assert main(["predict", str(path), "--device", "host"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_cli_predict_json_and_table(
    tiny_onnx: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["predict", str(tiny_onnx), "--device", "stm32h7", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["device"] == "stm32h7" and d["latency_ms"] > 0
    assert d["flash_bytes"] > 0 and d["sram_bytes"] > 0 and d["feasible"] is True
    assert 0 < d["top_kernels"][0]["share"] <= 1
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["predict", str(tiny_onnx), "--device", "rpi4"]) == 0
    out = capsys.readouterr().out
    assert "latency" in out and "energy" in out and "matmul" in out


def test_cli_predict_model_name_exports_through_compression(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("paretoedge.compression._export", reason="export_onnx not built yet")
    code = main(["predict", "tiny-bert", "--device", "rpi4", "--seq-len", "16", "--json"])
    assert code == 0, capsys.readouterr().err
    d = json.loads(capsys.readouterr().out)
    assert d["device"] == "rpi4" and d["latency_ms"] > 0
    assert d["onnx"].endswith("tiny-bert-b1-s16.onnx")
    onnx.checker.check_model(onnx.load(d["onnx"]))
