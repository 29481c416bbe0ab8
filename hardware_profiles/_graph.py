"""Reading any ONNX file into the form the lowering needs.

What this module guarantees, whatever exported the file:

* every tensor gets a canonical name (graph inputs keep theirs, initializers become ``w<i>``,
  other tensors ``t<i>``), so two exports of the same architecture hash the same and the
  relax parameters map back to initializers without depending on TVM's name sanitising;
* initializers are not pooled by value: the exporter keeps one initializer per value and
  passes it on through ``Identity`` nodes, so two exports of one architecture whose
  activation zero points happen to coincide differently would differ in structure (and each
  get its own lowering). Each such ``Identity`` becomes the initializer it stands for, and
  initializers are ordered by first use;
* small constant sub-graphs (shape arithmetic, attention-mask construction) are folded with
  ONNX's reference evaluator; TVM 0.27's importer mis-handles some of them (a
  ``ConstantOfShape`` with a scalar shape), and folding them is semantics-preserving;
* the weight facts the latency model needs and TVM does not see (bit-width and sparsity per
  weight) come from the ``paretoedge.layers`` metadata when present, from the initializer's
  dtype for QDQ (int8/uint8/int4 weights) and from counting zeros otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paretoedge.errors import LoweringError

_FOLD_MAX_IN = 4096
_FOLD_MAX_OUT = 1 << 16
_NO_FOLD = {"DequantizeLinear", "QuantizeLinear", "DynamicQuantizeLinear"}
CACHE_VERSION = "3"


@dataclass(frozen=True)
class WeightInfo:
    """Storage facts of one weight initializer (canonical name ``w<i>``)."""

    canonical: str
    original: str
    numel: int
    rows: int
    bits: int
    scheme: str
    sparsity: float
    act_bits: int | None
    onnx_dtype_bits: int


@dataclass(frozen=True)
class PreparedGraph:
    """A canonicalised, folded ONNX model plus what the cost model needs about weights."""

    model: object  # onnx.ModelProto (kept untyped so importing this module stays cheap)
    structure_hash: str
    inputs: tuple[tuple[str, tuple[int, ...], str], ...]
    weights: dict[str, WeightInfo]


def _dtype_bits(onnx_dtype: int) -> int:
    from onnx import TensorProto

    table: dict[int, int] = {
        TensorProto.FLOAT: 32,
        TensorProto.FLOAT16: 16,
        TensorProto.BFLOAT16: 16,
        TensorProto.DOUBLE: 64,
        TensorProto.INT8: 8,
        TensorProto.UINT8: 8,
        TensorProto.INT4: 4,
        TensorProto.UINT4: 4,
        TensorProto.INT32: 32,
        TensorProto.INT64: 64,
        TensorProto.BOOL: 8,
    }
    return table.get(int(onnx_dtype), 32)


def load_onnx(path: Path):  # -> onnx.ModelProto
    """Load and check an ONNX file; any failure is a :class:`LoweringError` naming the path."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise LoweringError(f"ONNX file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises several unrelated types
        raise LoweringError(f"{path}: not a valid ONNX model ({exc})") from None
    return model


def _layer_entries(model) -> list[dict] | None:
    """The ``paretoedge.layers`` metadata entries, or None when the file has none."""
    props = {p.key: p.value for p in model.metadata_props}
    raw = props.get("paretoedge.layers")
    if raw is None:
        return None
    try:
        layers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LoweringError(f"metadata paretoedge.layers is not JSON ({exc})") from None
    return [e for e in layers if isinstance(e, dict)]


def _layer_metadata(model) -> dict[str, dict]:
    """The metadata entries by initializer name (those that name one)."""
    return {str(e["initializer"]): e for e in _layer_entries(model) or () if e.get("initializer")}


def _facts(entry: Mapping[str, Any], dtype_bits: int) -> tuple[int, str, float | None, int | None]:
    """Bits (at most the stored dtype's), scheme, sparsity (None: count the zeros) and
    activation bits of one weight, from its metadata entry (empty: a plain float weight)."""
    bits = int(entry.get("bits", dtype_bits) or dtype_bits)
    sparsity = entry.get("sparsity")
    act = entry.get("act_bits")
    return (
        min(bits, dtype_bits),
        str(entry.get("scheme", "uniform")),
        None if sparsity is None else float(sparsity),
        None if act is None else int(act),
    )


def _fold_constants(model) -> None:
    """Replace nodes whose inputs are all small constants by Constant nodes (in place)."""
    from onnx import helper
    from onnx import numpy_helper as nh
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    consts: dict[str, np.ndarray] = {
        i.name: nh.to_array(i) for i in graph.initializer if int(np.prod(i.dims)) <= _FOLD_MAX_IN
    }
    new_nodes = []
    for node in graph.node:
        if node.op_type == "Constant":
            attr = node.attribute[0]
            if attr.name == "value":
                consts[node.output[0]] = nh.to_array(attr.t)
            new_nodes.append(node)
            continue
        foldable = (
            node.domain in ("", "ai.onnx")
            and node.op_type not in _NO_FOLD
            and len(node.input) > 0
            and all(i == "" or i in consts for i in node.input)
            and not any(a.type == a.GRAPH for a in node.attribute)
        )
        if foldable:
            feeds = {i: consts[i] for i in node.input if i}
            try:
                sub = helper.make_model(
                    helper.make_graph(
                        [node],
                        "fold",
                        [
                            helper.make_tensor_value_info(
                                i, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape
                            )
                            for i, v in feeds.items()
                        ],
                        [helper.make_tensor_value_info(o, 0, None) for o in node.output],
                    ),
                    opset_imports=[helper.make_opsetid("", opset)],
                )
                outs = [np.asarray(o) for o in ReferenceEvaluator(sub).run(None, feeds)]
            except Exception:  # the reference evaluator lacks an op: keep the node
                outs = None
            if outs is not None and all(o.size <= _FOLD_MAX_OUT for o in outs):
                for name, value in zip(node.output, outs, strict=True):
                    consts[name] = value
                    new_nodes.append(
                        helper.make_node("Constant", [], [name], value=nh.from_array(value, name))
                    )
                continue
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)


def _unpool_initializers(graph) -> None:
    """Undo the exporter's pooling of equal initializers, in place.

    Why: the TorchScript exporter keeps one initializer of each value and turns every other
    initializer of that value into an ``Identity`` of it, so whether two activation
    quantisers share a zero point depends on calibration values, not on the architecture.
    Here each ``Identity`` of an initializer becomes the copy it stands for, and initializers
    are ordered by first use: the graph's structure then follows from the architecture only,
    and variants of one architecture share one structure hash (and one lowering). What it
    costs: such a copy is counted as a weight of its own, as in the unpooled model (a scale
    or zero point of a few bytes where two happened to be equal).
    """
    inits = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    kept = []
    for node in graph.node:
        source = node.input[0] if len(node.input) == 1 else ""
        if (
            node.op_type == "Identity"
            and node.domain in ("", "ai.onnx")
            and source in inits
            and node.output[0] not in outputs
            and node.output[0] not in inits
        ):
            copy = type(inits[source])()
            copy.CopyFrom(inits[source])
            copy.name = node.output[0]
            inits[copy.name] = copy
            continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    order: dict[str, None] = {}
    for node in graph.node:
        for name in node.input:
            if name in inits:
                order.setdefault(name)
    for name in inits:
        order.setdefault(name)
    del graph.initializer[:]
    graph.initializer.extend(inits[n] for n in order)


def _canonicalise(model) -> dict[str, str]:
    """Rename tensors canonically in place; returns original initializer name -> ``w<i>``."""
    graph = model.graph
    mapping: dict[str, str] = {i.name: i.name for i in graph.input}
    init_map: dict[str, str] = {}
    for k, init in enumerate(graph.initializer):
        init_map[init.name] = mapping[init.name] = f"w{k}"
    counter = 0

    def rename(name: str) -> str:
        nonlocal counter
        if name == "":
            return name
        if name not in mapping:
            mapping[name] = f"t{counter}"
            counter += 1
        return mapping[name]

    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename(name)
        for i, name in enumerate(node.output):
            node.output[i] = rename(name)
        node.name = ""
        node.doc_string = ""
    for init in graph.initializer:
        init.name = mapping[init.name]
    for seq in (graph.output, graph.value_info):
        for vi in seq:
            vi.name = rename(vi.name)
    graph.input.extend([])  # inputs keep their names
    return init_map


def _structure_hash(model) -> str:
    """Hash of ops, attributes, shapes and dtypes: weight values are left out."""
    from google.protobuf.json_format import MessageToDict
    from onnx import numpy_helper as nh

    g = model.graph
    payload: dict[str, object] = {"v": CACHE_VERSION}
    payload["inputs"] = [MessageToDict(i.type) | {"n": i.name} for i in g.input]
    payload["outputs"] = [MessageToDict(o.type) for o in g.output]
    payload["init"] = [(i.name, list(i.dims), i.data_type) for i in g.initializer]
    nodes = []
    for n in g.node:
        attrs = []
        for a in n.attribute:
            if a.type == a.TENSOR:
                arr = nh.to_array(a.t)
                if arr.size <= _FOLD_MAX_IN:
                    val: object = [list(arr.shape), str(arr.dtype), arr.tobytes().hex()]
                else:
                    val = [list(arr.shape), str(arr.dtype)]
            else:
                val = MessageToDict(a)
            attrs.append((a.name, val))
        nodes.append((n.op_type, n.domain, list(n.input), list(n.output), attrs))
    payload["nodes"] = nodes
    payload["opset"] = [(o.domain, o.version) for o in model.opset_import]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def prepare(path: Path) -> PreparedGraph:
    """Load ``path`` and return the canonical folded graph and its weight facts.

    Raises:
        LoweringError: Not a valid ONNX file, or its graph inputs have dynamic dimensions
            (lower one static-shape graph per (batch, sequence length): TVM returns wrong
            numbers silently for legacy exports with dynamic axes).
    """
    from onnx import numpy_helper as nh

    model = load_onnx(path)
    graph = model.graph
    init_names = {i.name for i in graph.initializer}
    inputs = []
    for vi in graph.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        dims = []
        for d in tt.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise LoweringError(
                    f"{path}: input {vi.name!r} has a dynamic dimension "
                    f"{d.dim_param or '?'!r}; export with static shapes (batch, seq_len)"
                )
            dims.append(int(d.dim_value))
        inputs.append((vi.name, tuple(dims), _np_dtype_name(tt.elem_type)))
    # initializers that are also listed as graph inputs (old exporters) would become
    # runtime inputs in TVM; drop them from the input list
    keep = [vi for vi in graph.input if vi.name not in init_names]
    del graph.input[:]
    graph.input.extend(keep)

    _unpool_initializers(graph)
    meta = _layer_metadata(model)
    originals = [i.name for i in graph.initializer]
    weights: dict[str, WeightInfo] = {}
    for k, init in enumerate(graph.initializer):
        arr = nh.to_array(init)
        dtype_bits = _dtype_bits(init.data_type)
        bits, scheme, sparsity, act = _facts(meta.get(originals[k], {}), dtype_bits)
        if sparsity is None:
            sparsity = float(np.count_nonzero(arr == 0) / arr.size) if arr.size else 0.0
        weights[f"w{k}"] = WeightInfo(
            canonical=f"w{k}",
            original=originals[k],
            numel=int(arr.size),
            rows=int(arr.shape[0]) if arr.ndim >= 1 else 1,
            bits=bits,
            scheme=scheme,
            sparsity=sparsity,
            act_bits=act,
            onnx_dtype_bits=dtype_bits,
        )
    _canonicalise(model)
    _fold_constants(model)
    return PreparedGraph(
        model=model,
        structure_hash=_structure_hash(model),
        inputs=tuple(inputs),
        weights=weights,
    )


def with_weight_facts(prepared: PreparedGraph, facts: Iterable[Mapping[str, Any]]) -> PreparedGraph:
    """``prepared`` with its weights' bit-width, scheme, sparsity and activation bits taken
    from ``facts`` (:func:`paretoedge.compression.weight_facts` of another model).

    Why: a bit-width or sparsity variant of an architecture exports the same graph (weight
    values and these facts aside; the structure hash leaves both out), and the cost model
    reads only these facts of its weights. So a variant is costed on the graph of the first
    model of its architecture instead of a new export and :func:`prepare` (what a screening
    pool of hundreds of variants costs otherwise). The caller vouches that the two models
    share a graph; every module of ``facts`` must be one the graph's ``paretoedge.layers``
    metadata names.

    Raises:
        LoweringError: ``prepared`` has no ``paretoedge.layers`` metadata, or ``facts`` names
            a module it does not.
    """
    import dataclasses

    entries = _layer_entries(prepared.model)
    if entries is None:
        raise LoweringError("with_weight_facts: the graph has no paretoedge.layers metadata")
    initializer = {str(e["module"]): e.get("initializer") for e in entries}
    by_original = {w.original: w for w in prepared.weights.values()}
    weights = dict(prepared.weights)
    for entry in facts:
        module = str(entry["module"])
        if module not in initializer:
            raise LoweringError(f"with_weight_facts: module {module!r} is not in this graph")
        w = by_original.get(str(initializer[module]))
        if w is None:  # a module without its own initializer (shared or folded away)
            continue
        bits, scheme, sparsity, act = _facts(entry, w.onnx_dtype_bits)
        weights[w.canonical] = dataclasses.replace(
            w,
            bits=bits,
            scheme=scheme,
            sparsity=w.sparsity if sparsity is None else sparsity,
            act_bits=act,
        )
    return dataclasses.replace(prepared, weights=weights)


def _np_dtype_name(elem_type: int) -> str:
    from onnx import helper

    return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
