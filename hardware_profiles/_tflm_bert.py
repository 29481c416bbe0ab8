"""The TFLM op schedule of a BERT-family candidate, as paretoedge's TFLM export writes it.

:func:`paretoedge.exporters.export_tflite` converts a candidate with ``litert-torch`` (PT2E
int8: per-channel int8 weights, int8 activations around every linear layer) and always
yields the same pattern, read off the converted flatbuffers (``bench/tflm_memory.py``):

* embeddings: int8 tables with a float scale per row (EMBEDDING_LOOKUP on both, CAST,
  QUANTIZE, MUL), the low-rank projection of the word table as a FULLY_CONNECTED, the
  precomputed position rows as a constant, and float sums;
* LayerNorm stays in float: MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL, SUB and the
  broadcasts, then the affine MUL/ADD;
* attention: int8 query/key/value FULLY_CONNECTED, int8 BATCH_MATMUL of query and key,
  the scores dequantised to float for the mask, SOFTMAX in float, and the weighted sum of
  values as a *float* BATCH_MATMUL (TFLM keeps a transposed copy of each right-hand side);
* the FFN in int8 (a down/up pair of FULLY_CONNECTED when factorised) with GELU as
  ``x * sigmoid(c (x + 0.0447 x^3))`` (MUL, MUL, MUL, ADD, MUL, LOGISTIC, MUL);
* the pooler (SLICE, FULLY_CONNECTED, TANH) and the classifier.

:func:`bert_structure` reads the shapes this needs from the candidate's ONNX file (the
same module names the export sees); :func:`tflm_schedule` writes the schedule as a
:class:`~._tflm_arena.TflmGraph` and :func:`flatbuffer_bytes` the flatbuffer's size.
Sub-8-bit and clustered weights are stored as int8 by this export (TFLM's converter path
has no packed int4 here) and pruned weights stay dense (TFLM has no sparse kernels), so
bits below 8 and sparsity do not shrink the TFLM flash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._tflm_arena import TflmGraph

if TYPE_CHECKING:
    from ._graph import PreparedGraph

I8, F32, I32 = 1, 4, 4


@dataclass(frozen=True)
class Linear:
    """A linear layer: ``rank`` set when it is factorised into down (in->rank), up."""

    inp: int
    out: int
    rank: int | None = None


@dataclass(frozen=True)
class BertLayer:
    heads: int
    head_dim: int
    query: Linear
    key: Linear
    value: Linear
    attn_out: Linear
    intermediate: Linear
    output: Linear


@dataclass(frozen=True)
class BertStructure:
    """What the TFLM schedule depends on (no weight values)."""

    seq: int
    vocab: int
    word_width: int  # columns of the word table: the rank when factorised, else hidden
    hidden: int
    type_vocab: int
    layers: tuple[BertLayer, ...]
    labels: int


_LIN = re.compile(
    r"layer\.(\d+)\.(attention\.self\.query|attention\.self\.key|attention\.self\.value|"
    r"attention\.output\.dense|intermediate\.dense|output\.dense)(\.down|\.up)?\.weight$"
)


def _dims(prepared: PreparedGraph) -> dict[str, tuple[int, ...]]:
    """Original initializer name -> shape."""
    canon_to_orig = {w.canonical: w.original for w in prepared.weights.values()}
    model = prepared.model
    return {
        canon_to_orig.get(i.name, i.name): tuple(int(d) for d in i.dims)
        for i in model.graph.initializer  # type: ignore[attr-defined]
    }


def _head_dim(prepared: PreparedGraph, seq: int) -> int | None:
    """The last entry of the first ``[1, seq, n|-1, d]`` reshape target (the heads split)."""
    from onnx import numpy_helper as nh

    for node in prepared.model.graph.node:  # type: ignore[attr-defined]
        if node.op_type != "Constant" or not node.attribute:
            continue
        attr = node.attribute[0]
        if attr.name != "value":
            continue
        value = nh.to_array(attr.t)
        if value.ndim == 1 and value.size == 4 and value[0] == 1 and value[1] == seq:
            if value[3] > 0:
                return int(value[3])
    return None


def _linear(dims: dict[str, tuple[int, ...]], prefix: str, inp: int) -> Linear | None:
    """The linear at ``prefix`` (plain, or ``.down``/``.up``) whose input width is ``inp``."""

    def out_of(shape: tuple[int, ...], width: int) -> int | None:
        if len(shape) != 2:
            return None
        a, b = shape
        return b if a == width else a if b == width else None

    plain = dims.get(prefix + ".weight")
    if plain is not None:
        out = out_of(plain, inp)
        return None if out is None else Linear(inp, out)
    down, up = dims.get(prefix + ".down.weight"), dims.get(prefix + ".up.weight")
    if down is None or up is None:
        return None
    rank = out_of(down, inp)
    out = None if rank is None else out_of(up, rank)
    return None if rank is None or out is None else Linear(inp, out, rank)


def bert_structure(prepared: PreparedGraph) -> BertStructure | None:
    """The BERT structure of ``prepared``, or None when it is not a BERT our export writes."""
    dims = _dims(prepared)
    by_suffix = {}
    for name, shape in dims.items():
        for key in (
            "embeddings.word_embeddings.embed.weight",
            "embeddings.word_embeddings.proj.weight",
            "embeddings.word_embeddings.weight",
            "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight",
            "pooler.dense.weight",
            "classifier.weight",
        ):
            if name.endswith(key):
                by_suffix[key] = shape
    ids = [shape for name, shape, _ in prepared.inputs if name == "input_ids"]
    types = by_suffix.get("embeddings.token_type_embeddings.weight")
    pooler = by_suffix.get("pooler.dense.weight")
    classifier = by_suffix.get("classifier.weight")
    if not ids or len(ids[0]) != 2 or types is None or pooler is None or classifier is None:
        return None
    seq = ids[0][1]
    hidden = types[1]
    if "embeddings.word_embeddings.embed.weight" in by_suffix:
        vocab, width = by_suffix["embeddings.word_embeddings.embed.weight"]
    elif "embeddings.word_embeddings.weight" in by_suffix:
        vocab, width = by_suffix["embeddings.word_embeddings.weight"]
    else:
        return None
    head_dim = _head_dim(prepared, seq)
    layer_ids = sorted({int(m.group(1)) for n in dims if (m := _LIN.search(n))})
    if head_dim is None or not layer_ids:
        return None
    prefixes = {}
    for name in dims:
        m = _LIN.search(name)
        if m:
            prefixes[(int(m.group(1)), m.group(2))] = name[: m.start(3) if m.group(3) else -7]
    layers = []
    for i in layer_ids:
        get = {part: prefixes.get((i, part)) for part in
               ("attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense")}  # fmt: skip
        if any(v is None for v in get.values()):
            return None
        q = _linear(dims, str(get["attention.self.query"]), hidden)
        k = _linear(dims, str(get["attention.self.key"]), hidden)
        v = _linear(dims, str(get["attention.self.value"]), hidden)
        if q is None or k is None or v is None or q.out % head_dim:
            return None
        o = _linear(dims, str(get["attention.output.dense"]), v.out)
        inter = _linear(dims, str(get["intermediate.dense"]), hidden)
        out = None if inter is None else _linear(dims, str(get["output.dense"]), inter.out)
        if o is None or inter is None or out is None:
            return None
        layers.append(BertLayer(q.out // head_dim, head_dim, q, k, v, o, inter, out))
    labels = classifier[0] if classifier[1] == hidden else classifier[1]
    return BertStructure(seq, vocab, width, hidden, types[0], tuple(layers), labels)


class _Builder:
    """Tensors and ops in TFLM's terms; constants are deduplicated like the converter's."""

    def __init__(self) -> None:
        self.g = TflmGraph()
        self._consts: dict[object, int] = {}
        #: flatbuffer bytes of each constant buffer, and quantisation channels per tensor
        self.const_bytes: list[int] = []

    def act(self, shape: tuple[int, ...], size: int, *, quant: bool = False) -> int:
        n = 1
        for d in shape:
            n *= d
        return self.g.tensor(n * size, channels=1 if quant else 0, rank=len(shape))

    def const(self, key: object, nbytes: int, *, channels: int = 0, rank: int = 1) -> int:
        if key in self._consts:
            return self._consts[key]
        t = self.g.tensor(nbytes, const=True, channels=channels, rank=rank)
        self._consts[key] = t
        self.const_bytes.append(nbytes)
        return t

    def weight(self, out: int, inp: int) -> int:
        return self.const(object(), out * inp * I8, channels=out, rank=2)

    def bias(self, out: int) -> int:
        return self.const(object(), out * I32, channels=out, rank=1)

    def shape(self, *dims: int) -> int:
        return self.const(("shape", dims), 4 * len(dims), rank=1)

    def op(self, kind: str, ins: list[int], out: int, **kw: tuple[int, ...]) -> int:
        self.g.op(kind, ins, [out], **kw)
        return out

    def fc(self, x: int, rows: int, lin: Linear, *, bias: bool, out_shape: tuple[int, ...]) -> int:
        """FULLY_CONNECTED(s) of ``lin`` on ``x`` (``rows`` tokens)."""
        if lin.rank is not None:
            x = self.fc(x, rows, Linear(lin.inp, lin.rank), bias=False,
                        out_shape=(*out_shape[:-1], lin.rank))  # fmt: skip
            lin = Linear(lin.rank, lin.out)
        ins = [x, self.weight(lin.out, lin.inp)]
        ins.append(self.bias(lin.out) if bias else -1)
        y = self.act(out_shape, I8, quant=True)
        return self.op("FULLY_CONNECTED", ins, y, persistent=(4 * lin.out, 4 * lin.out))

    def bmm(self, lhs: int, rhs: int, out: int, rhs_bytes: int, ptr: int, quant: bool) -> int:
        # TFLM keeps a transposed copy of the right-hand side: an EvalTensor, its dims, data
        extra = (2 * ptr + 4, 4 + 4 * 3, rhs_bytes) + ((28,) if quant else ())
        return self.op("BATCH_MATMUL", [lhs, rhs], out, persistent=extra)


def _layer_norm(b: _Builder, x: int, s: int, h: int, key: str) -> int:
    mean = b.op("MEAN", [x, b.const("axes", 8)], b.act((s,), F32), scratch=(12, 8))
    mean3 = b.op("RESHAPE", [mean, b.shape(1, s, 1)], b.act((1, s, 1), F32))
    sq = b.op("SQUARED_DIFFERENCE", [x, mean3], b.act((1, s, h), F32))
    var = b.op("MEAN", [sq, b.const("axes", 8)], b.act((s,), F32), scratch=(12, 8))
    var = b.op("ADD", [var, b.const("eps", 4)], b.act((s,), F32))
    rs = b.op("RSQRT", [var], b.act((s,), F32))
    shift = b.op("MUL", [rs, mean], b.act((s,), F32))
    shift = b.op("SUB", [b.const("zero", 4), shift], b.act((s,), F32))
    rs3 = b.op("RESHAPE", [rs, b.shape(1, s, 1)], b.act((1, s, 1), F32))
    y = b.op("MUL", [x, rs3], b.act((1, s, h), F32))
    shift3 = b.op("RESHAPE", [shift, b.shape(1, s, 1)], b.act((1, s, 1), F32))
    y = b.op("ADD", [y, shift3], b.act((1, s, h), F32))
    y = b.op("MUL", [y, b.const((key, "gamma"), 4 * h)], b.act((1, s, h), F32))
    return b.op("ADD", [y, b.const((key, "beta"), 4 * h)], b.act((1, s, h), F32))


def _lookup(b: _Builder, ids: int, rows: int, width: int, s: int, key: str) -> int:
    """int8 table rows times their float scale: int8 ``[1, s, width]``."""
    table = b.const((key, "table"), rows * width * I8, rank=2)
    scales = b.const((key, "scale"), rows * F32, rank=2)
    e = b.op("EMBEDDING_LOOKUP", [ids, table], b.act((s, width), I8))
    e = b.op("RESHAPE", [e, b.shape(1, s, width)], b.act((1, s, width), I8))
    e = b.op("CAST", [e], b.act((1, s, width), F32))
    e = b.op("QUANTIZE", [e], b.act((1, s, width), I8, quant=True))
    sc = b.op("EMBEDDING_LOOKUP", [ids, scales], b.act((s, 1), F32))
    sc = b.op("RESHAPE", [sc, b.shape(1, s, 1)], b.act((1, s, 1), F32))
    sc = b.op("QUANTIZE", [sc], b.act((1, s, 1), I8, quant=True))
    return b.op("MUL", [e, sc], b.act((1, s, width), I8, quant=True))


def tflm_schedule(st: BertStructure, *, pointer_bytes: int) -> tuple[TflmGraph, list[int]]:
    """The op schedule of ``st`` and the byte sizes of its constant buffers (module doc)."""
    b = _Builder()
    s, h = st.seq, st.hidden
    ids, mask, types = (b.act((1, s), I32) for _ in range(3))
    b.g.inputs = [ids, mask, types]
    m = b.op("RESHAPE", [mask, b.shape(1, 1, 1, s)], b.act((1, 1, 1, s), I32))
    m = b.op("CAST", [m], b.act((1, 1, 1, s), F32))
    m = b.op("SUB", [b.const("one", 4), m], b.act((1, 1, 1, s), F32))
    m = b.op("QUANTIZE", [m], b.act((1, 1, 1, s), I8, quant=True))
    m = b.op("MUL", [m, b.const("mask_min", 1, channels=1)], b.act((1, 1, 1, s), I8, quant=True))
    mask_f = b.op("DEQUANTIZE", [m], b.act((1, 1, 1, s), F32))

    flat_ids = b.op("RESHAPE", [ids, b.shape(s)], b.act((s,), I32))
    word = _lookup(b, flat_ids, st.vocab, st.word_width, s, "word")
    if st.word_width != h:
        word = b.fc(word, s, Linear(st.word_width, h), bias=False, out_shape=(1, s, h))
    word = b.op("DEQUANTIZE", [word], b.act((1, s, h), F32))
    flat_types = b.op("RESHAPE", [types, b.shape(s)], b.act((s,), I32))
    typ = _lookup(b, flat_types, st.type_vocab, h, s, "type")
    typ = b.op("DEQUANTIZE", [typ], b.act((1, s, h), F32))
    x = b.op("ADD", [word, typ], b.act((1, s, h), F32))
    pos = b.op("CAST", [b.const("pos", s * h, rank=3)], b.act((1, s, h), F32))
    pos = b.op("QUANTIZE", [pos], b.act((1, s, h), I8, quant=True))
    pos_scale = b.op("QUANTIZE", [b.const("pos_scale", s * F32, rank=3)],
                     b.act((1, s, 1), I8, quant=True))  # fmt: skip
    pos = b.op("MUL", [pos, pos_scale], b.act((1, s, h), I8, quant=True))
    pos = b.op("DEQUANTIZE", [pos], b.act((1, s, h), F32))
    x = b.op("ADD", [x, pos], b.act((1, s, h), F32))
    x = _layer_norm(b, x, s, h, "emb")

    for li, layer in enumerate(st.layers):
        n, d = layer.heads, layer.head_dim
        xq = b.op("QUANTIZE", [x], b.act((1, s, h), I8, quant=True))
        q = b.fc(xq, s, layer.query, bias=True, out_shape=(1, s, n * d))
        q = b.op("RESHAPE", [q, b.shape(1, s, n, d)], b.act((1, s, n, d), I8, quant=True))
        q = b.op("TRANSPOSE", [q, b.shape(0, 2, 1, 3)], b.act((1, n, s, d), I8, quant=True))
        k = b.fc(xq, s, layer.key, bias=True, out_shape=(1, s, n * d))
        k = b.op("RESHAPE", [k, b.shape(1, s, n, d)], b.act((1, s, n, d), I8, quant=True))
        v = b.fc(xq, s, layer.value, bias=True, out_shape=(1, s, n * d))
        v = b.op("RESHAPE", [v, b.shape(1, s, n, d)], b.act((1, s, n, d), I8, quant=True))
        v = b.op("TRANSPOSE", [v, b.shape(0, 2, 1, 3)], b.act((1, n, s, d), I8, quant=True))
        k = b.op("TRANSPOSE", [k, b.shape(0, 2, 3, 1)], b.act((1, n, d, s), I8, quant=True))
        q = b.op("RESHAPE", [q, b.shape(n, s, d)], b.act((n, s, d), I8, quant=True))
        k = b.op("RESHAPE", [k, b.shape(n, d, s)], b.act((n, d, s), I8, quant=True))
        a = b.bmm(q, k, b.act((n, s, s), I8, quant=True), n * d * s * I8, pointer_bytes, True)
        a = b.op("RESHAPE", [a, b.shape(1, n, s, s)], b.act((1, n, s, s), I8, quant=True))
        a = b.op("MUL", [a, b.const("scale", 1, channels=1)], b.act((1, n, s, s), I8, quant=True))
        a = b.op("DEQUANTIZE", [a], b.act((1, n, s, s), F32))
        a = b.op("ADD", [a, mask_f], b.act((1, n, s, s), F32))
        a = b.op("SOFTMAX", [a], b.act((1, n, s, s), F32))
        a = b.op("RESHAPE", [a, b.shape(n, s, s)], b.act((n, s, s), F32))
        v = b.op("RESHAPE", [v, b.shape(n, s, d)], b.act((n, s, d), I8, quant=True))
        v = b.op("DEQUANTIZE", [v], b.act((n, s, d), F32))
        c = b.bmm(a, v, b.act((n, s, d), F32), n * s * d * F32, pointer_bytes, False)
        c = b.op("QUANTIZE", [c], b.act((n, s, d), I8, quant=True))
        c = b.op("RESHAPE", [c, b.shape(1, n, s, d)], b.act((1, n, s, d), I8, quant=True))
        c = b.op("TRANSPOSE", [c, b.shape(0, 2, 1, 3)], b.act((1, s, n, d), I8, quant=True))
        c = b.op("RESHAPE", [c, b.shape(1, s, n * d)], b.act((1, s, n * d), I8, quant=True))
        o = b.fc(c, s, layer.attn_out, bias=True, out_shape=(1, s, h))
        o = b.op("DEQUANTIZE", [o], b.act((1, s, h), F32))
        x = b.op("ADD", [o, x], b.act((1, s, h), F32))
        x = _layer_norm(b, x, s, h, f"l{li}.attn")
        xq = b.op("QUANTIZE", [x], b.act((1, s, h), I8, quant=True))
        f = layer.intermediate.out
        u = b.fc(xq, s, layer.intermediate, bias=True, out_shape=(1, s, f))
        g = b.op("MUL", [u, b.const("gelu_a", 1, channels=1)], b.act((1, s, f), I8, quant=True))
        g = b.op("MUL", [g, u], b.act((1, s, f), I8, quant=True))
        g = b.op("MUL", [g, u], b.act((1, s, f), I8, quant=True))
        g = b.op("ADD", [u, g], b.act((1, s, f), I8, quant=True))
        g = b.op("MUL", [g, b.const("gelu_c", 1, channels=1)], b.act((1, s, f), I8, quant=True))
        g = b.op("LOGISTIC", [g], b.act((1, s, f), I8, quant=True))
        g = b.op("MUL", [u, g], b.act((1, s, f), I8, quant=True))
        y = b.fc(g, s, layer.output, bias=True, out_shape=(1, s, h))
        y = b.op("DEQUANTIZE", [y], b.act((1, s, h), F32))
        x = b.op("ADD", [y, x], b.act((1, s, h), F32))
        x = _layer_norm(b, x, s, h, f"l{li}.out")

    xq = b.op("QUANTIZE", [x], b.act((1, s, h), I8, quant=True))
    first = b.op("SLICE", [xq, b.shape(0, 0, 0), b.shape(1, 1, h)],
                 b.act((1, 1, h), I8, quant=True))  # fmt: skip
    p = b.fc(first, 1, Linear(h, h), bias=True, out_shape=(1, h))
    p = b.op("TANH", [p], b.act((1, h), I8, quant=True))
    logits = b.fc(p, 1, Linear(h, st.labels), bias=True, out_shape=(1, st.labels))
    b.g.outputs = [logits]
    return b.g, b.const_bytes


def flatbuffer_bytes(graph: TflmGraph, const_bytes: list[int]) -> int:
    """Size of the flatbuffer: constant data plus the schema's tables (see below).

    Per tensor: its table (~24 bytes), shape vector (4 + 4 per dim) and, when quantised,
    a quantisation table (~24 bytes) with a float scale and an int64 zero point per
    channel; per buffer: a table (~12 bytes) and its data padded to 16; per op: its table
    (~28 bytes), input and output vectors and its options (~16 bytes); plus the model's
    header, operator codes, signature and metadata (~1 KB).
    """
    tensors = sum(
        24 + 4 + 4 * t.rank + (24 + 8 + 12 * t.channels if t.channels else 0) for t in graph.tensors
    )
    buffers = sum(12 + 4 + ((n + 15) // 16) * 16 for n in const_bytes) + 12 * (
        len(graph.tensors) - len(const_bytes)
    )
    ops = sum(28 + 8 + 4 * (len(op.inputs) + len(op.outputs)) + 16 for op in graph.ops)
    return tensors + buffers + ops + 1024
