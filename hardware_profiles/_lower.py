"""Lowering a prepared ONNX graph through TVM Relax for one target, and reading its kernels.

The pipeline is TVM's own, split in two so the kernels can be read between the halves:

* CPU (``llvm``) and ``c`` targets: ``tvm.compile``'s default build pipeline (dispatch, then
  ``LegalizeOps``: one untuned kernel per operator, which is what "TVM default" runs);
* GPU targets (OpenCL with ``device: mali`` / ``adreno``): the target's default pipeline
  (legalize, fuse, DLight default GPU schedules).

After the first half every kernel is a ``call_tir`` of a PrimFunc in the ``main`` function;
we record, per kernel, its TIR FLOP estimate, the bytes of every argument and of the result,
and which weight initializer (``w<i>``) each argument comes from, looking through layout
kernels and weight ``dequantize`` kernels (TVM legalizes QDQ int8 into fp32 kernels; the cost
model turns a dequantize -> matmul pair back into an int8 kernel). The second half builds the
module for the target (cross-compiling where the target is not this machine), so a model that
does not build fails here as a :class:`LoweringError` rather than being costed.
"""

from __future__ import annotations

import logging
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from paretoedge.errors import LoweringError

from ._graph import PreparedGraph

log = logging.getLogger(__name__)

_MATMUL = ("matmul", "dense", "conv", "batch_matmul")
_REDUCTION = (
    "softmax",
    "layer_norm",
    "rms_norm",
    "group_norm",
    "sum",
    "mean",
    "max",
    "min",
    "variance",
    "prod",
    "argmax",
    "argmin",
    "std",
)
_GATHER = ("take", "gather", "embedding")
_LAYOUT = (
    "transpose",
    "reshape",
    "concat",
    "split",
    "strided_slice",
    "broadcast_to",
    "expand",
    "squeeze",
    "shape_to_tensor",
    "copy",
    "permute",
    "flatten",
    "tile",
    "repeat",
)
_ALIAS = ("reshape", "squeeze", "expand_dims", "flatten")


def kernel_kind(name: str) -> str:
    """Kernel kind from a PrimFunc name (fused kernels are named after their first op)."""
    base = name[len("fused_") :] if name.startswith("fused_") else name
    first = base.split("_")[0] if base else base
    for kind, words in (
        ("matmul", _MATMUL),
        ("reduction", _REDUCTION),
        ("gather", _GATHER),
        ("layout", _LAYOUT),
    ):
        if any(base.startswith(w) or first.startswith(w) for w in words):
            return kind
    if base.startswith("dequantize") or base.startswith("quantize"):
        return "elementwise"
    return "elementwise"


@dataclass(frozen=True)
class ArgRecord:
    shape: tuple[int, ...]
    numel: int
    dtype: str
    weight: str | None
    via_dequantize: bool


@dataclass(frozen=True)
class KernelRecord:
    """One launched kernel as the target's pipeline produced it (target-specific, cacheable)."""

    name: str
    kind: str
    flops: float
    args: tuple[ArgRecord, ...]
    out_numel: int
    out_dtype: str
    weight_dequantize: bool

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["args"] = [asdict(a) for a in self.args]
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> KernelRecord:
        return KernelRecord(
            name=d["name"],
            kind=d["kind"],
            flops=float(d["flops"]),
            args=tuple(ArgRecord(**(a | {"shape": tuple(a["shape"])})) for a in d["args"]),
            out_numel=int(d["out_numel"]),
            out_dtype=d["out_dtype"],
            weight_dequantize=bool(d["weight_dequantize"]),
        )


@dataclass(frozen=True)
class LoweredGraph:
    """What the cost model needs from one build (stored in the compiled-cost cache)."""

    kernels: tuple[KernelRecord, ...]
    peak_activation_bytes: int
    code_bytes: int
    build_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kernels": [k.to_json() for k in self.kernels],
            "peak_activation_bytes": self.peak_activation_bytes,
            "code_bytes": self.code_bytes,
            "build_s": self.build_s,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> LoweredGraph:
        return LoweredGraph(
            kernels=tuple(KernelRecord.from_json(k) for k in d["kernels"]),
            peak_activation_bytes=int(d["peak_activation_bytes"]),
            code_bytes=int(d["code_bytes"]),
            build_s=float(d["build_s"]),
        )


def dtype_bytes(dtype: str) -> float:
    if dtype == "bool":
        return 1.0
    digits = "".join(c for c in dtype if c.isdigit())
    return int(digits) / 8 if digits else 4.0


def make_target(target: dict[str, Any], host: dict[str, Any] | None):
    import tvm

    try:
        if host is not None:
            return tvm.target.Target(dict(target, host=host))
        return tvm.target.Target(dict(target))
    except Exception as exc:
        raise LoweringError(f"invalid TVM target {target!r}: {exc}") from None


def _is_gpu(tgt) -> bool:
    return "gpu" in tgt.keys


def import_relax(prepared: PreparedGraph):
    """ONNX -> Relax IRModule with weights as parameters (``w<i>``)."""
    import tvm  # noqa: F401
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    try:
        mod = from_onnx(prepared.model, keep_params_in_input=True, sanitize_input_names=False)
        mod, params = relax.frontend.detach_params(mod)
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        raise LoweringError(f"TVM cannot import the model: {msg[-1] if msg else exc}") from None
    return mod, params


def _front_back(tgt):
    import tvm
    from tvm import relax
    from tvm.relax import pipeline as P

    if _is_gpu(tgt):
        front = P.library_dispatch_passes(tgt) + P.legalize_passes(tgt)
        back = P.dataflow_lower_passes(tgt) + P.finalize_passes(tgt)
    else:
        t = relax.transform
        front = [
            relax.backend.DispatchSampling(),
            relax.backend.DispatchSortScan(),
            t.LegalizeOps(),
        ]
        back = [
            t.RewriteDataflowReshape(),
            t.ToNonDataflow(),
            t.RemovePurityChecking(),
            t.CallTIRRewrite(),
            t.StaticPlanBlockMemory(),
            t.RewriteCUDAGraph(),
            t.LowerAllocTensor(),
            t.KillAfterLastUse(),
            t.LowerRuntimeBuiltin(),
            t.ComputePrimValue(),
            t.VMShapeLower(),
            t.AttachGlobalSymbol(),
        ]
    return tvm.transform.Sequential(front), tvm.transform.Sequential(back)


def _shape(ty) -> tuple[int, ...] | None:
    shape = getattr(ty, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(int(x) for x in shape)
    except TypeError:
        return None


def _numel(ty) -> int:
    s = _shape(ty)
    if s is None:
        raise LoweringError("a tensor has a dynamic shape after import; use static shapes")
    n = 1
    for d in s:
        n *= d
    return n


def _extract(fm) -> tuple[list[KernelRecord], int]:
    import tvm
    from tvm import relax
    from tvm.s_tir.analysis import estimate_tir_flops

    call_tir = tvm.ir.Op.get("relax.call_tir")
    main = fm["main"]
    param_names = {p.name for p in main.params}
    # var name -> (weight origin, went through a dequantize kernel)
    origin: dict[str, tuple[str | None, bool]] = {
        n: ((n if n.startswith("w") and n[1:].isdigit() else None), False) for n in param_names
    }
    kernels: list[KernelRecord] = []
    # liveness: tensor -> (bytes, def index, last use index); aliases share storage
    size: dict[str, int] = {}
    alias: dict[str, str] = {}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    step = 0
    flop_cache: dict[str, float] = {}

    def root(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            out_name = binding.var.name
            if not (isinstance(value, relax.Call) and value.op.same_as(call_tir)):
                used = [a.name for a in getattr(value, "args", []) if isinstance(a, relax.Var)]
                for u in used:
                    last[root(u)] = step
                if used and used[0] in origin:
                    origin[out_name] = origin[used[0]]
                if used and hasattr(binding.var.ty, "shape"):
                    alias[out_name] = used[0]
                step += 1
                continue
            gv = value.args[0]
            name = gv.name_hint
            if name not in flop_cache:
                try:
                    flop_cache[name] = float(estimate_tir_flops(tvm.IRModule({"main": fm[gv]})))
                except Exception:
                    flop_cache[name] = 0.0
            arg_records = []
            origins = []
            for a in value.args[1].fields:
                numel = _numel(a.ty)
                shape = _shape(a.ty) or ()
                dtype = str(a.ty.dtype.dtype) if hasattr(a.ty.dtype, "dtype") else str(a.ty.dtype)
                if isinstance(a, relax.Var):
                    w, dq = origin.get(a.name, (None, False))
                    last[root(a.name)] = step
                else:
                    w, dq = None, False
                origins.append((w, dq))
                arg_records.append(
                    ArgRecord(shape=shape, numel=numel, dtype=dtype, weight=w, via_dequantize=dq)
                )
            out_ty = binding.var.ty
            out_numel = _numel(out_ty)
            out_dtype = (
                str(out_ty.dtype.dtype) if hasattr(out_ty.dtype, "dtype") else str(out_ty.dtype)
            )
            kind = kernel_kind(name)
            base = name[len("fused_") :] if name.startswith("fused_") else name
            is_dq = base.startswith("dequantize")
            weight_args = [o for o in origins if o[0] is not None]
            non_const = [
                a
                for a in value.args[1].fields
                if isinstance(a, relax.Var) and a.name not in param_names
            ]
            weight_dq = False
            if (is_dq or kind == "layout") and weight_args and not non_const:
                # a kernel that only transforms a weight (transpose, dequantize): its output
                # keeps the weight's identity; runtimes fold it away at load time
                origin[out_name] = (weight_args[0][0], weight_args[0][1] or is_dq)
                weight_dq = True
            elif is_dq and non_const:
                origin[out_name] = (None, True)  # a dequantized activation (QDQ)
            elif kind == "layout" and len(non_const) == 1:
                w, dq = origin.get(non_const[0].name, (None, False))
                origin[out_name] = (w, dq)
            kernels.append(
                KernelRecord(
                    name=name,
                    kind=kind,
                    flops=flop_cache[name],
                    args=tuple(arg_records),
                    out_numel=out_numel,
                    out_dtype=out_dtype,
                    weight_dequantize=weight_dq,
                )
            )
            if base.startswith(_ALIAS) and non_const:
                alias[out_name] = non_const[0].name
            elif not weight_dq:
                size[out_name] = int(out_numel * dtype_bytes(out_dtype))
                first[out_name] = step
                last.setdefault(out_name, step)
            step += 1
    # graph outputs stay alive to the end
    ret = main.body.body
    for v in getattr(ret, "fields", [ret]):
        if isinstance(v, relax.Var):
            last[root(v.name)] = step
    for p in main.params:
        if p.name not in origin or origin[p.name][0] is None:
            size[p.name] = int(
                _numel(p.ty)
                * dtype_bytes(
                    str(p.ty.dtype.dtype) if hasattr(p.ty.dtype, "dtype") else str(p.ty.dtype)
                )
            )
            first[p.name] = 0
    peak = 0
    events: dict[int, int] = {}
    for n, b in size.items():
        s, e = first[n], last.get(n, first[n])
        events[s] = events.get(s, 0) + b
        events[e + 1] = events.get(e + 1, 0) - b
    cur = 0
    for t in sorted(events):
        cur += events[t]
        peak = max(peak, cur)
    return kernels, peak


def _elf_code_bytes(data: bytes) -> int:
    """Sum of allocated, non-writable sections (code + read-only data) of an ELF object."""
    if data[:4] != b"\x7fELF":
        return 0
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff = struct.unpack_from(end + "Q", data, 0x28)[0]
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
    else:
        shoff = struct.unpack_from(end + "I", data, 0x20)[0]
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
    total = 0
    for i in range(shnum):
        off = shoff + i * shentsize
        if is64:
            sh_type, flags = struct.unpack_from(end + "IQ", data, off + 4)
            sh_size = struct.unpack_from(end + "Q", data, off + 0x20)[0]
        else:
            sh_type, flags = struct.unpack_from(end + "II", data, off + 4)
            sh_size = struct.unpack_from(end + "I", data, off + 0x14)[0]
        alloc, write = flags & 0x2, flags & 0x1
        if alloc and not write and sh_type != 8:  # SHT_NOBITS holds no bytes
            total += sh_size
    return total


def _code_bytes(executable, tgt) -> int:
    """Size of the generated kernel code: ELF text+rodata for LLVM, source size for C."""
    libs = list(executable.mod.imports)
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for k, lib in enumerate(libs):
            formats = list(lib.get_write_formats()) if hasattr(lib, "get_write_formats") else []
            if lib.kind == "llvm":
                path = Path(tmp) / f"k{k}.o"
                lib.write_to_file(str(path), "o")
                total += _elf_code_bytes(path.read_bytes())
            elif lib.kind == "c" or "c" in formats:
                # C source: ~1 byte of Thumb-2 code per 4 source characters is a rough rule
                total += len(lib.inspect_source()) // 4
            else:
                total += len(lib.inspect_source()) if hasattr(lib, "inspect_source") else 0
    return total


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence TVM's C++ warnings (written straight to fd 2) during a build."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def lower(
    prepared: PreparedGraph,
    target: dict[str, Any],
    host: dict[str, Any] | None,
    *,
    keep_executable: bool = False,
) -> tuple[LoweredGraph, Any]:
    """Import, legalize and build ``prepared`` for ``target``; read its kernels.

    Returns:
        The kernel table (cacheable) and the built executable when ``keep_executable``.

    Raises:
        LoweringError: TVM cannot import or build the model for that target.
    """
    from tvm import relax

    tgt = make_target(target, host)
    mod, _params = import_relax(prepared)
    start = time.perf_counter()
    front, back = _front_back(tgt)
    try:
        with _quiet_native_stderr():
            with tgt:
                fm = front(mod)
            kernels, peak = _extract(fm)
            executable = relax.build(fm, tgt, relax_pipeline=back)
    except LoweringError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        raise LoweringError(
            f"TVM cannot build the model for {target.get('kind')}: {msg[-1] if msg else exc}"
        ) from None
    code = _code_bytes(executable, tgt)
    build_s = time.perf_counter() - start
    log.info("built %d kernels for %s in %.2fs", len(kernels), target, build_s)
    lowered = LoweredGraph(tuple(kernels), peak, code, build_s)
    return lowered, (executable if keep_executable else None)
