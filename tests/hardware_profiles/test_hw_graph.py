"""Reading ONNX: canonical structure hash, metadata, QDQ, bad files (no TVM build)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from paretoedge.errors import LoweringError
from paretoedge.hardware_profiles import prepare


def test_hash_ignores_weight_values_not_shapes(make_onnx) -> None:
    a = prepare(make_onnx(seed=0))
    b = prepare(make_onnx(seed=1))
    c = prepare(make_onnx(hidden=32, ffn=64))
    d = prepare(make_onnx(seq_len=16))
    assert a.structure_hash == b.structure_hash
    assert len({a.structure_hash, c.structure_hash, d.structure_hash}) == 3


def test_metadata_bits_and_sparsity(make_onnx) -> None:
    p = prepare(make_onnx(bits=4, act_bits=8, sparsity=0.5))
    quant = [w for w in p.weights.values() if w.bits == 4]
    # 6 encoder Linears per layer x 2 layers carry the metadata
    assert len(quant) == 12
    assert all(w.act_bits == 8 and w.sparsity == pytest.approx(0.5) for w in quant)
    assert all(w.bits == 32 for w in p.weights.values() if w.bits != 4)


def test_sparsity_counted_without_metadata(make_onnx, tmp_path: Path) -> None:
    model = onnx.load(str(make_onnx(sparsity=0.6)))
    del model.metadata_props[:]
    path = tmp_path / "nometa.onnx"
    onnx.save(model, str(path))
    p = prepare(path)
    sparse = [w for w in p.weights.values() if w.sparsity > 0.55 and w.numel >= 4096]
    assert len(sparse) == 12


def test_weight_facts_on_a_shared_graph_equal_a_new_prepare(make_onnx) -> None:
    """A variant's facts applied to its architecture's graph give the weights that
    preparing the variant's own export gives, so the cost model sees the same inputs."""
    from paretoedge.hardware_profiles import with_weight_facts

    dense = prepare(make_onnx())
    variant = prepare(make_onnx(bits=4, act_bits=8, sparsity=0.5))
    layers = json.loads({p.key: p.value for p in variant.model.metadata_props}["paretoedge.layers"])
    facts = [
        {k: e[k] for k in ("module", "bits", "scheme", "sparsity", "act_bits")} for e in layers
    ]
    shared = with_weight_facts(dense, facts)
    assert shared.structure_hash == variant.structure_hash == dense.structure_hash
    assert shared.weights == variant.weights
    assert dense.weights != variant.weights  # the graph it came from is left as it was
    with pytest.raises(LoweringError, match="encoder.nowhere"):
        with_weight_facts(dense, [{**facts[0], "module": "encoder.nowhere"}])


def test_static_inputs_recorded(make_onnx) -> None:
    p = prepare(make_onnx(seq_len=16, batch=2))
    assert {name: shape for name, shape, _ in p.inputs} == {
        "input_ids": (2, 16),
        "attention_mask": (2, 16),
        "token_type_ids": (2, 16),
    }


def test_dynamic_axes_rejected(make_onnx, tmp_path: Path) -> None:
    model = onnx.load(str(make_onnx()))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "seq"
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    with pytest.raises(LoweringError, match="dynamic dimension"):
        prepare(path)


def test_garbage_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(LoweringError, match="junk.onnx"):
        prepare(path)
    with pytest.raises(LoweringError, match="does not exist"):
        prepare(tmp_path / "missing.onnx")


def test_qdq_int8_weights_recognised(tmp_path: Path) -> None:
    from onnx import TensorProto, helper
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    w = nh.from_array(rng.integers(-127, 127, (64, 32)).astype(np.int8), "w_q")
    scale = nh.from_array(np.array(0.01, np.float32), "w_scale")
    zp = nh.from_array(np.array(0, np.int8), "w_zp")
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"]),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 32])],
        [w, scale, zp],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "qdq.onnx"
    onnx.save(model, str(path))
    p = prepare(path)
    assert [x.bits for x in p.weights.values() if x.numel == 64 * 32] == [8]
    assert json.dumps([x.canonical for x in p.weights.values()])


def _two_act_quantisers(tmp_path: Path, zero_points: tuple[int, int]) -> Path:
    """x -> QDQ -> MatMul -> QDQ -> MatMul, exported the way the TorchScript exporter does:
    initializers of equal value pooled into one, the other use an ``Identity`` of it."""
    from onnx import TensorProto, helper
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    inits = [
        nh.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w1"),
        nh.from_array(rng.standard_normal((16, 4)).astype(np.float32), "w2"),
        nh.from_array(np.array(0.02, np.float32), "s1"),
        nh.from_array(np.array(0.05, np.float32), "s2"),
        nh.from_array(np.array(zero_points[0], np.uint8), "z1"),
    ]
    nodes = []
    if zero_points[0] == zero_points[1]:
        nodes.append(helper.make_node("Identity", ["z1"], ["z2"]))
    else:
        inits.append(nh.from_array(np.array(zero_points[1], np.uint8), "z2"))
    for k, (x, y) in enumerate([("x", "h"), ("h", "y")], start=1):
        nodes += [
            helper.make_node("QuantizeLinear", [x, f"s{k}", f"z{k}"], [f"q{k}"]),
            helper.make_node("DequantizeLinear", [f"q{k}", f"s{k}", f"z{k}"], [f"d{k}"]),
            helper.make_node("MatMul", [f"d{k}", f"w{k}"], [y]),
        ]
    graph = helper.make_graph(
        nodes,
        "act-qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 4])],
        inits,
    )
    path = tmp_path / f"act-{zero_points[0]}-{zero_points[1]}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_zero_points_pooled_by_value_do_not_change_the_structure(tmp_path: Path) -> None:
    """Whether two activation zero points happen to be equal (the exporter then pools them)
    is calibration, not architecture: both exports get one structure and the same weights."""
    apart = prepare(_two_act_quantisers(tmp_path, (128, 131)))
    pooled = prepare(_two_act_quantisers(tmp_path, (128, 128)))
    assert apart.structure_hash == pooled.structure_hash
    assert [(w.numel, w.onnx_dtype_bits) for w in apart.weights.values()] == [
        (w.numel, w.onnx_dtype_bits) for w in pooled.weights.values()
    ]
    assert not any(n.op_type == "Identity" for n in pooled.model.graph.node)
    # a graph with other zero points is still the same structure; other shapes are not
    assert prepare(_two_act_quantisers(tmp_path, (7, 7))).structure_hash == apart.structure_hash
