"""What TensorFlow Lite Micro allocates for a model: its arena (SRAM) and flatbuffer (flash).

TFLM puts everything a model needs at run time in one "tensor arena" that the firmware
sizes once. Read from TFLM's own allocator (``micro_allocator.cc``,
``micro_allocation_info.cc``, ``memory_planner/greedy_memory_planner.cc`` and the kernels'
``Init``/``Prepare``), the arena holds two parts:

* the *head*, planned offline by :class:`GreedyMemoryPlanner` over the op schedule: every
  tensor that is not a constant lives from the op that writes it (the graph inputs from
  the start) to the last op that reads it (the graph outputs to the end), each buffer
  rounded up to 16 bytes; buffers are placed largest first at the lowest offset where
  they overlap no placed buffer that is live at the same time. Kernels' scratch buffers
  (``RequestScratchBufferInArena``, e.g. MEAN's index arrays) are planned the same way,
  live during their op only. While it plans, the head also holds temporary planning
  arrays (one ``AllocationInfo`` per tensor, ~40 bytes of planner state per buffer): the
  head is the larger of the plan and that;
* the *tail*, persistent: one ``TfLiteEvalTensor`` per tensor of the flatbuffer, one
  ``NodeAndRegistration`` per op, each kernel's ``OpData`` and parsed options, and what
  kernels keep between calls: FULLY_CONNECTED's per-channel output multipliers and shifts
  (two int32 per output channel), BATCH_MATMUL's transposed copy of its right-hand side
  (and of the left one when ``adj_x``), which is as large as that operand; plus the
  interpreter's own objects and the TfLiteTensors of the graph inputs and outputs.

Struct sizes depend on the pointer width: :func:`arena_bytes` takes ``pointer_bytes`` (8
on the 64-bit host where TFLM's Python interpreter measures, 4 on a Cortex-M). Every
allocation in the tail is aligned to 16 bytes (``MicroArenaBufferAlignment``).

The flatbuffer (flash) is the constant buffers (weights, biases, quantisation scales and
zero points, shapes) plus the per-tensor and per-op tables of the schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

ALIGN = 16

#: Per-op persistent bytes read from the kernels' OpData structs: (int32 fields, pointers).
#: Ops missing here keep nothing (RESHAPE, CAST, TRANSPOSE, SLICE, EMBEDDING_LOOKUP, ...).
_OP_DATA: dict[str, tuple[int, int]] = {
    "FULLY_CONNECTED": (10, 2),  # OpDataFullyConnected
    "MUL": (9, 0),  # OpDataMul
    "ADD": (15, 0),  # OpDataAdd
    "SUB": (13, 0),  # OpDataSub
    "SQUARED_DIFFERENCE": (13, 0),  # its OpData: an ADD-like arithmetic block
    "QUANTIZE": (7, 0),  # OpDataQuantizeReference (QuantizationParams has a double)
    "DEQUANTIZE": (7, 0),  # DequantizeOpData
    "MEAN": (11, 0),  # OpDataReduce
    "SOFTMAX": (12, 2),  # SoftmaxParams (+ two LUT pointers)
    "LOGISTIC": (4, 0),  # OpDataLogistic
    "TANH": (4, 0),
    "BATCH_MATMUL": (1, 3),  # OpDataBatchMatmul: three pointers and three flags
    "RSQRT": (4, 0),
    "STRIDED_SLICE": (20, 0),  # StridedSliceParams
}
#: Parsed builtin options that TFLM keeps per op (``MicroBuiltinDataAllocator``), in bytes.
_OPTIONS: dict[str, int] = {
    "FULLY_CONNECTED": 16,
    "MUL": 4,
    "ADD": 8,
    "SUB": 8,
    "MEAN": 4,
    "SOFTMAX": 4,
    "BATCH_MATMUL": 4,
    "RESHAPE": 36,
    "CAST": 0,
    "SQUARED_DIFFERENCE": 0,
}


def _align(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class TflmTensor:
    """One tensor of the flatbuffer: ``const`` ones live in flash, others in the head."""

    nbytes: int
    const: bool = False
    #: quantisation channels (1 for per-tensor int8, C for per-channel weights, 0: float)
    channels: int = 0
    rank: int = 1


@dataclass(frozen=True)
class TflmOp:
    """One operator of the schedule: its builtin name and tensor indices."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    #: RequestScratchBufferInArena sizes (planned, live during this op only)
    scratch: tuple[int, ...] = ()
    #: kernel-specific persistent bytes beyond its OpData (per-channel arrays, copies)
    persistent: tuple[int, ...] = ()


@dataclass
class TflmGraph:
    """An op schedule as TFLM sees it; built with :meth:`tensor` and :meth:`op`."""

    tensors: list[TflmTensor] = field(default_factory=list)
    ops: list[TflmOp] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def tensor(self, nbytes: int, *, const: bool = False, channels: int = 0, rank: int = 1) -> int:
        self.tensors.append(TflmTensor(int(nbytes), const, channels, rank))
        return len(self.tensors) - 1

    def op(
        self,
        kind: str,
        inputs: Sequence[int],
        outputs: Sequence[int],
        *,
        scratch: Sequence[int] = (),
        persistent: Sequence[int] = (),
    ) -> None:
        self.ops.append(TflmOp(kind, tuple(inputs), tuple(outputs), tuple(scratch),
                               tuple(persistent)))  # fmt: skip


@dataclass(frozen=True)
class TflmArena:
    """Predicted arena, split as TFLM's RecordingMicroAllocator reports it."""

    head_bytes: int
    tail_bytes: int
    plan_bytes: int
    planning_bytes: int

    @property
    def arena_bytes(self) -> int:
        return self.head_bytes + self.tail_bytes


def greedy_plan(buffers: Sequence[tuple[int, int, int]]) -> int:
    """High-water mark of TFLM's GreedyMemoryPlanner for ``(size, first, last)`` buffers.

    Same algorithm as the planner: sizes in descending order (stable for ties), each
    placed in the first gap, in offset order, between buffers live at the same time.
    """
    order = sorted(range(len(buffers)), key=lambda i: -buffers[i][0])
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last), by offset
    high = 0
    for i in order:
        size, first, last = buffers[i]
        offset = 0
        for o, s, f, lt in placed:
            if f > last or first > lt:
                continue
            if o - offset >= size:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, first, last))
        placed.sort(key=lambda p: p[0])
        high = max(high, offset + size)
    return high


def _lifetimes(graph: TflmGraph) -> list[tuple[int, int, int]]:
    """Planned buffers ``(bytes, first, last)`` as ``AllocationInfoBuilder`` marks them."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in graph.inputs:
        first[t] = last[t] = 0
    buffers: list[tuple[int, int, int]] = []
    for step, op in enumerate(graph.ops, start=1):
        for t in op.outputs:
            first.setdefault(t, step)
        for t in (*op.inputs, *op.outputs):
            if t >= 0:
                last[t] = step
        buffers.extend((_align(s), step, step) for s in op.scratch)
    end = len(graph.ops) + 1
    for t in graph.outputs:
        first.setdefault(t, end)
        last[t] = end
    for t, info in enumerate(graph.tensors):
        if info.const or info.nbytes == 0 or t not in first:
            continue
        buffers.append((_align(info.nbytes), first[t], last.get(t, first[t])))
    return buffers


def arena_bytes(graph: TflmGraph, *, pointer_bytes: int = 4) -> TflmArena:
    """The arena TFLM needs for ``graph`` (module doc), for a ``pointer_bytes``-bit target."""
    p = pointer_bytes
    buffers = _lifetimes(graph)
    plan = greedy_plan(buffers)
    eval_tensor = _align(2 * p + 4, p)
    node = _align(7 * p + 4, p)
    tail = _align(eval_tensor * len(graph.tensors)) + _align(node * len(graph.ops))
    for op in graph.ops:
        ints, ptrs = _OP_DATA.get(op.kind, (0, 0))
        if ints or ptrs:
            tail += _align(4 * ints + p * ptrs)
        options = _OPTIONS.get(op.kind, 0)
        if options:
            tail += _align(options)
        tail += sum(_align(b) for b in op.persistent)
        tail += _align(p) * len(op.scratch)  # ScratchBufferHandle
    # the interpreter's TfLiteTensors for graph inputs and outputs, and their quantisation
    tensor_struct = _align(8 * p + 24, p)
    tail += (len(graph.inputs) + len(graph.outputs)) * tensor_struct
    tail += sum(
        _align(3 * p) + _align(4 + 4 * graph.tensors[t].channels)
        for t in graph.outputs
        if graph.tensors[t].channels
    )
    # allocator objects: SingleArenaBufferAllocator, MicroAllocator, GreedyMemoryPlanner,
    # MicroBuiltinDataAllocator, SubgraphAllocations, the interpreter's graph bookkeeping
    tail += 48 * p
    allocation_info = (4 * p + 16) if p == 8 else (5 * 4 + 4)
    n_scratch = sum(len(op.scratch) for op in graph.ops)
    planning = _align(allocation_info * (len(graph.tensors) + n_scratch)) + 40 * len(buffers)
    head = max(plan, planning)
    return TflmArena(head_bytes=head, tail_bytes=tail, plan_bytes=plan, planning_bytes=planning)
