"""Binary and ternary weights are costed as the device runs them: unpacked to int8."""

from __future__ import annotations

import pytest

from paretoedge.hardware_profiles import load_profile, predict

pytestmark = pytest.mark.tvm


@pytest.mark.parametrize("device", ["rpi4", "stm32h7"])
def test_binary_and_ternary_weights_run_as_unpacked_int8(device: str, make_onnx) -> None:
    int4 = predict(make_onnx(bits=4, act_bits=8), device)
    ternary = predict(make_onnx(bits=2), device)
    binary = predict(make_onnx(bits=1), device)
    weight_only_4 = predict(make_onnx(bits=4), device)
    # packed 1/2-bit codes plus one fp32 scale per row
    assert binary.weight_bytes < ternary.weight_bytes < int4.weight_bytes
    # no float kernel exists for them: int8 kernels even without quantized activations,
    # unlike a weight-only 4-bit layer (fp32 compute)
    assert any(k.dtype == "int8" for k in ternary.kernels)
    assert any(k.dtype == "int8" for k in binary.kernels)
    assert not any(k.dtype == "int8" for k in weight_only_4.kernels)
    # the unpack work is charged as for 4-bit weights: more ops than a plain int8 matmul
    assert load_profile(device).unpack_ops_per_weight > 0
    int8 = {k.name: k.ops for k in predict(make_onnx(bits=8, act_bits=8), device).kernels}
    int4_ops = {k.name: k.ops for k in int4.kernels}
    matmuls = [k for k in binary.kernels if k.kind == "matmul" and k.dtype == "int8"]
    assert matmuls
    assert all(k.ops > int8[k.name] and k.ops == int4_ops[k.name] for k in matmuls)
