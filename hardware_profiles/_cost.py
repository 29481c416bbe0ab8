"""The latency, memory and energy model, and :func:`predict`.

Per kernel (from the target's lowered TIR, see :mod:`._lower`)::

    t_k = soft_max(compute_k, cache_bytes_k / cache_bw + dram_bytes_k / dram_bw)
          * kernel_scale[kind_k] + restream_bytes_k / restream_bandwidth[level_k] + launch

with ``compute_k`` = work at the dtype's peak (times ``matvec_compute_scale`` for
matrix-vector work: at most 8 rows per weight, i.e. one-token steps at batch <= 8), and
latency = sum of t_k + operators x ``op_overhead_us`` (an eager framework's or a graph
executor's dispatch per ONNX operator) + one call overhead. Weights count as DRAM bytes when
the weights a call streams (all but embedding tables) exceed the last-level cache, so
one-token decoder steps are costed by the bytes they stream at the DRAM bandwidth; other
operands count at the cache bandwidth. Every parameter is physical and separate, which is
what lets :mod:`._calibrate` fit them (see there). The re-stream term is zero for runtimes
with tiled matmuls; for untuned TVM loop nests it is the weight re-read once per output row
from the cache level that holds it. Where the profile carries a measured
``matmul_table`` (untuned TVM on the host), a matmul's base time is its multiply-adds times
the table's cost at its weight shape (a b-bit weight of N columns looked up as N*b/32 fp32
columns: same column stride) instead of the roofline and re-stream terms. A calibrated
profile whose cross-validation lost to a simple proxy carries ``proxy_blend``: the
prediction is then blended with that proxy (see :class:`~._profile.ProxyBlend`).
``work`` is TVM's TIR FLOP estimate; ``bytes`` are the kernel's arguments and result at
their stored width. TVM legalizes quantized graphs into fp32/int32 kernels, so the model
re-types them itself: a matmul whose weight is stored at <= 8 bits (``paretoedge.layers``
metadata, or an int8/int4 initializer behind a ``DequantizeLinear``) and whose activations
are quantized too (``act_bits: 8`` or a QDQ activation) runs at the profile's int8 peak,
sub-8-bit weights pay the profile's unpack cost; a weight-only quantized matmul keeps fp32
compute but moves fewer weight bytes, except binary and ternary (1/2-bit uniform) weights:
no runtime has a float kernel for them, so they are unpacked to int8 (the profile's unpack
cost) and run as an int8 matmul with activations quantized on the fly. None of our
transforms binarizes activations, so no device is costed with XNOR-popcount kernels;
kernels that only dequantize or re-layout a weight are
folded away (runtimes do them at load time). Unstructured sparsity reduces work and weight
bytes only at or above the profile's threshold, where sparse kernels pay off.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paretoedge.errors import LoweringError

from ._cache import cache_get, cache_key, cache_put
from ._graph import PreparedGraph, WeightInfo, prepare
from ._lower import ArgRecord, KernelRecord, LoweredGraph, dtype_bytes, lower
from ._profile import KERNEL_KINDS, DeviceProfile, resolve_profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelCost:
    """Predicted cost of one kernel."""

    name: str
    kind: str
    dtype: str
    ops: float
    bytes: float
    latency_ms: float
    share: float


@dataclass(frozen=True)
class Prediction:
    """Predicted latency, memory and energy of one model on one device.

    ``violations`` lists every memory limit the model exceeds ("flash 3.1 MB > 2.0 MB"); a
    model with violations is infeasible on the device but still gets a prediction.
    """

    device: str
    runtime: str
    latency_ms: float
    peak_memory_bytes: int
    weight_bytes: int
    activation_bytes: int
    flash_bytes: int | None
    sram_bytes: int | None
    energy_mj: float
    kernels: tuple[KernelCost, ...]
    violations: tuple[str, ...]
    structure_hash: str = ""
    cache_hit: bool = False

    @property
    def feasible(self) -> bool:
        return not self.violations

    def top_kernels(self, n: int = 5) -> list[KernelCost]:
        """The ``n`` most expensive kernel names, same-named kernels summed."""
        merged: dict[str, list[float]] = {}
        for k in self.kernels:
            row = merged.setdefault(k.name, [0.0, 0.0, 0.0])
            row[0] += k.latency_ms
            row[1] += k.ops
            row[2] += k.bytes
        kinds = {k.name: (k.kind, k.dtype) for k in self.kernels}
        total = sum(k.latency_ms for k in self.kernels) or 1.0
        rows = [
            KernelCost(name, kinds[name][0], kinds[name][1], v[1], v[2], v[0], v[0] / total)
            for name, v in merged.items()
        ]
        return sorted(rows, key=lambda r: -r.latency_ms)[:n]

    def to_dict(self, *, kernels: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d["feasible"] = self.feasible
        d["violations"] = list(self.violations)
        if kernels:
            d["kernels"] = [asdict(k) for k in self.kernels]
            d["top_kernels"] = [asdict(k) for k in self.top_kernels()]
        else:
            del d["kernels"]
        return d


def _sparse_pays(w: WeightInfo, profile: DeviceProfile) -> bool:
    return w.sparsity >= profile.sparse_threshold and w.sparsity > 0


def stored_weight_bytes(w: WeightInfo, profile: DeviceProfile) -> float:
    """Bytes of one weight as the device stores it (packed bits, scales, codebook, sparse)."""
    value_bytes = w.bits / 8
    if _sparse_pays(w, profile):
        body = w.numel * (1 - w.sparsity) * (value_bytes + profile.sparse_index_bytes)
    else:
        body = w.numel * value_bytes
    extra = 0.0
    if w.bits <= 8:
        # uniform: one fp32 scale per output channel; cluster: an fp32 codebook
        extra = 4.0 * 2**w.bits if w.scheme == "cluster" else 4.0 * w.rows
    return body + extra


RESTREAM_LEVELS = ("l2", "l3", "dram")
_LINE_BYTES = 64
MATVEC_ROWS = 8  # a matmul whose weight is shared by at most this many rows is matrix-vector
# ONNX nodes that runtimes fold away at load time (not dispatched per inference)
_FREE_OPS = frozenset({"Constant", "Identity", "QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class _KernelWork:
    kind: str
    dtype: str
    ops: float
    int8_extra_ops: float
    weight_bytes: float
    act_bytes: float
    restream: dict[str, float]
    table_s: float | None = None  # measured matmul time (profile.matmul_table), if it applies
    matvec: bool = False  # matmul with <= MATVEC_ROWS rows per weight

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.act_bytes


def _matmul_operands(k: KernelRecord) -> tuple[ArgRecord, ArgRecord] | None:
    """The ``A`` (M x K) and ``B`` (K x N, the weight) operands of a matmul kernel."""
    mats = [a for a in k.args if len(a.shape) >= 2]
    if k.kind != "matmul" or len(mats) < 2:
        return None
    return mats[0], mats[1]


def _restream(
    k: KernelRecord, weight_bits: float | None, profile: DeviceProfile
) -> dict[str, float]:
    """Bytes an untuned matmul re-reads of its B operand, by the cache level holding B."""
    out = dict.fromkeys(RESTREAM_LEVELS, 0.0)
    operands = _matmul_operands(k)
    if profile.schedule != "naive" or operands is None:
        return out
    a, b = operands
    kdim, ndim = b.shape[-2], b.shape[-1]
    m = a.shape[-2]
    batch = max(1, b.numel // max(1, kdim * ndim))
    elem = (weight_bits / 8) if weight_bits is not None else dtype_bytes(b.dtype)
    b_bytes = kdim * ndim * elem
    l1 = profile.cache_kb.get("l1d", 32) * 1024
    ways = int(profile.cache_kb.get("l1d_ways", 8))
    sets = max(1, int(l1 // (_LINE_BYTES * ways)))
    # walking a column of B touches K lines N*elem bytes apart; with a power-of-two stride
    # they fall into few L1 sets (conflict misses), so the usable L1 lines are fewer
    row_bytes = ndim * elem
    if row_bytes % _LINE_BYTES == 0:
        usable = ways * (sets // math.gcd(int(row_bytes // _LINE_BYTES), sets))
    else:
        usable = ways * sets
    column_fits = kdim <= usable
    line_factor = 1.0 if column_fits else _LINE_BYTES / elem
    if column_fits and b_bytes <= l1:
        return out
    level = "dram"
    if b_bytes <= profile.cache_kb.get("l2", 0) * 1024:
        level = "l2"
    elif b_bytes <= profile.cache_kb.get("l3", 0) * 1024:
        level = "l3"
    out[level] = batch * m * b_bytes * line_factor
    return out


def _kernel_work(
    k: KernelRecord, weights: dict[str, WeightInfo], profile: DeviceProfile
) -> _KernelWork:
    act_bytes = k.out_numel * dtype_bytes(k.out_dtype)
    weight_bytes = 0.0
    weight: WeightInfo | None = None
    act_quant = False
    for a in k.args:
        w = weights.get(a.weight) if a.weight else None
        if w is not None and w.numel == a.numel:
            weight = w if weight is None or w.numel > weight.numel else weight
            if _sparse_pays(w, profile):
                weight_bytes += (
                    a.numel * (1 - w.sparsity) * (w.bits / 8 + profile.sparse_index_bytes)
                )
            else:
                weight_bytes += a.numel * w.bits / 8
        else:
            act_bytes += a.numel * dtype_bytes(a.dtype)
            act_quant = act_quant or a.via_dequantize
    if k.kind == "gather":
        # a lookup reads the rows it returns (and writes them), not its whole table or input
        out_bytes = k.out_numel * dtype_bytes(k.out_dtype)
        weight_bytes = min(weight_bytes, out_bytes)
        act_bytes = min(act_bytes, out_bytes * (1 if weight_bytes else 2))
    dtype = "fp16" if "float16" in k.out_dtype else "fp32"
    ops = k.flops
    extra = 0.0
    if k.kind == "matmul" and weight is not None:
        quant_act = weight.act_bits == 8 or act_quant
        if weight.bits <= 8 and weight.scheme == "uniform" and (quant_act or weight.bits <= 2):
            dtype = "int8"
            if weight.bits < 8 and profile.subbyte_mode == "unpack-int8":
                extra = weight.numel * profile.unpack_ops_per_weight
        elif weight.bits == 16:
            dtype = "fp16"
        if _sparse_pays(weight, profile):
            ops = ops * min(1.0, (1 - weight.sparsity) * profile.sparse_overhead)
    no_restream = dict.fromkeys(RESTREAM_LEVELS, 0.0)
    table = profile.matmul_table
    operands = _matmul_operands(k)
    matvec = False
    if operands is not None:
        ncols = operands[1].shape[-1]
        batch = max(1, operands[1].numel // max(1, operands[1].shape[-2] * ncols))
        matvec = k.out_numel / (ncols * batch) <= MATVEC_ROWS
    if table is not None and operands is not None:
        kdim, ndim = operands[1].shape[-2], operands[1].shape[-1]
        macs = k.out_numel * kdim
        if weight is not None and weight.bits < 32:
            # a narrower weight walks its column at a narrower stride: it behaves like an
            # fp32 weight with proportionally fewer columns (the loop nest stays scalar);
            # binary/ternary weights are walked as the int8 they are unpacked to
            bits = 8 if weight.bits <= 2 and dtype == "int8" else weight.bits
            ndim = max(1, round(ndim * bits / 32))
        density = ops / k.flops if k.flops > 0 else 1.0  # sparse kernels, where they pay
        table_s = macs * density * table.ns(kdim, ndim) * 1e-9
        return _KernelWork(
            k.kind, dtype, ops, extra, weight_bytes, act_bytes, no_restream, table_s, matvec
        )
    restream = _restream(k, None if weight is None else weight.bits, profile)
    return _KernelWork(k.kind, dtype, ops, extra, weight_bytes, act_bytes, restream, None, matvec)


def graph_operators(prepared: PreparedGraph) -> int:
    """Operators a runtime dispatches per inference: the ONNX graph's nodes, less the ones
    folded at load time (constants, identities, weight quantize/dequantize)."""
    graph = getattr(prepared.model, "graph", None)
    if graph is None:
        return 0
    return sum(1 for node in graph.node if node.op_type not in _FREE_OPS)


@dataclass(frozen=True)
class CostTerms:
    """One model's kernels on one profile's target as arrays: the latency model's inputs.

    Every term is in physical units, so a fit of the model recovers physical parameters
    (see :func:`terms_latency_s`): ``compute_s`` is each kernel's compute time at the
    profile's peak for its dtype, ``cache_bytes`` / ``dram_bytes`` the bytes it moves from
    the caches and from DRAM (weights count as DRAM when the model's stored weights do not
    fit the last-level cache: decoder steps stream them every call), ``table_s`` the
    measured matmul time where the profile has a matmul table (NaN elsewhere),
    ``restream`` the bytes an untuned loop nest re-reads per cache level (n x 3),
    ``matvec`` which kernels are matrix-vector work.
    """

    kind: np.ndarray
    compute_s: np.ndarray
    cache_bytes: np.ndarray
    dram_bytes: np.ndarray
    table_s: np.ndarray
    restream: np.ndarray
    operators: int
    flops: float
    matvec: np.ndarray
    weight_bytes: float
    peak_fp32_gops: float = 0.0  # the peak compute_s was computed at (0: unknown)

    @property
    def kernels(self) -> int:
        return len(self.kind)


@dataclass(frozen=True)
class LatencyParams:
    """The fitted quantities of the model, separately: a compute multiplier on the profile's
    peaks (``compute_scale`` 2 = half the peak) and a further one for matrix-vector work,
    DRAM and cache bandwidth, a factor per kernel kind, re-stream bandwidth per level, and
    three overheads (per kernel launch, per graph operator, per call), all in seconds or
    bytes per second."""

    compute_scale: float
    matvec_scale: float
    dram_bps: float
    cache_bps: float
    kind_scale: tuple[float, ...]
    restream_bps: tuple[float, ...]
    launch_s: float
    op_s: float
    call_s: float

    @staticmethod
    def of(profile: DeviceProfile, terms: CostTerms | None = None) -> LatencyParams:
        """``profile``'s parameters; with ``terms`` computed under another profile's peaks
        (calibration fits a profile on terms of its starting point), the compute multiplier
        that turns those into this profile's."""
        ref = terms.peak_fp32_gops if terms is not None else 0.0
        return LatencyParams(
            compute_scale=ref / profile.peak_gops["fp32"] if ref > 0 else 1.0,
            matvec_scale=profile.matvec_compute_scale,
            dram_bps=profile.memory_bandwidth_gbs * 1e9,
            cache_bps=profile.cache_gbs * 1e9,
            kind_scale=tuple(profile.kernel_scale[k] for k in KERNEL_KINDS),
            restream_bps=tuple(profile.restream_gbs[lv] * 1e9 for lv in RESTREAM_LEVELS),
            launch_s=profile.launch_overhead_us * 1e-6,
            op_s=profile.op_overhead_us * 1e-6,
            call_s=profile.call_overhead_us * 1e-6,
        )


def cost_terms(prepared: PreparedGraph, lowered: LoweredGraph, profile: DeviceProfile) -> CostTerms:
    """The arrays :func:`terms_latency_s` costs (cheap: no TVM)."""
    works = [
        _kernel_work(k, prepared.weights, profile)
        for k in lowered.kernels
        if not k.weight_dequantize
    ]
    stored = sum(stored_weight_bytes(w, profile) for w in prepared.weights.values())
    # the weights every call streams (embedding tables are looked up, not streamed): when
    # they do not fit the last-level cache, each call reads them from DRAM again
    streamed = sum(w.weight_bytes for w in works if w.kind != "gather")
    weights_in_dram = streamed > profile.llc_bytes
    llc = profile.llc_bytes
    kind_index: dict[str, int] = {k: i for i, k in enumerate(KERNEL_KINDS)}
    compute = []
    cache_b = []
    dram_b = []
    for w in works:
        c = w.ops / (profile.peak_gops[w.dtype] * 1e9)
        c += w.int8_extra_ops / (profile.peak_gops["int8"] * 1e9)
        compute.append(c)
        act_dram = w.act_bytes > llc > 0
        dram_b.append((w.weight_bytes if weights_in_dram else 0.0) + (w.act_bytes * act_dram))
        cache_b.append((0.0 if weights_in_dram else w.weight_bytes) + w.act_bytes * (not act_dram))
    return CostTerms(
        kind=np.array([kind_index[w.kind] for w in works], dtype=np.int64),
        compute_s=np.array(compute, dtype=float),
        cache_bytes=np.array(cache_b, dtype=float),
        dram_bytes=np.array(dram_b, dtype=float),
        table_s=np.array([np.nan if w.table_s is None else w.table_s for w in works], dtype=float),
        restream=np.array(
            [[w.restream[lv] for lv in RESTREAM_LEVELS] for w in works], dtype=float
        ).reshape(len(works), len(RESTREAM_LEVELS)),
        operators=graph_operators(prepared),
        flops=float(sum(k.flops for k in lowered.kernels if not k.weight_dequantize)),
        weight_bytes=float(stored),
        matvec=np.array([w.matvec for w in works], dtype=bool),
        peak_fp32_gops=profile.peak_gops["fp32"],
    )


ROOFLINE_P = 6.0


def soft_roofline(compute: np.ndarray, memory: np.ndarray) -> np.ndarray:
    """``(compute^p + memory^p)^(1/p)``: the roofline's max, rounded at the ridge point (at
    most 12% above the max where both sides are equal; real kernels overlap their compute and
    memory traffic imperfectly there) and smooth, so that calibration's gradient sees both
    sides of every kernel."""
    hi = np.maximum(np.maximum(compute, memory), 1e-30)
    return hi * ((compute / hi) ** ROOFLINE_P + (memory / hi) ** ROOFLINE_P) ** (1 / ROOFLINE_P)


def kernel_seconds_of(terms: CostTerms, p: LatencyParams) -> np.ndarray:
    """Per-kernel seconds::

        t_k = softmax(compute_k * compute_scale, cache_bytes_k / cache_bw + dram_bytes_k / dram_bw)
              * kind_scale[kind_k] + restream_k / restream_bw + launch

    (:func:`soft_roofline`; a measured matmul table replaces it), i.e. a roofline per kernel
    whose compute and memory sides are separate parameters: matrix-vector work (one token,
    batch <= 8) falls on the memory side and is costed by the bytes it streams.
    """
    memory = terms.cache_bytes / p.cache_bps + terms.dram_bytes / p.dram_bps
    compute = terms.compute_s * p.compute_scale * np.where(terms.matvec, p.matvec_scale, 1.0)
    base = soft_roofline(compute, memory)
    base = np.where(np.isnan(terms.table_s), base, terms.table_s)
    t = base * np.asarray(p.kind_scale)[terms.kind]
    if terms.kernels:
        t = t + terms.restream @ (1.0 / np.asarray(p.restream_bps))
    return t + p.launch_s


def terms_latency_s(terms: CostTerms, p: LatencyParams) -> float:
    """Model latency of one inference: kernels, operator dispatch and the call."""
    return float(kernel_seconds_of(terms, p).sum() + terms.operators * p.op_s + p.call_s)


def proxy_value(terms: CostTerms, proxy: str, coef: tuple[float, ...]) -> float:
    """Milliseconds of a least-squares proxy (see :class:`ProxyBlend`)."""
    if proxy == "flops":
        return coef[0] + coef[1] * terms.flops / 1e9
    if proxy == "weight_bytes":
        return coef[0] + coef[1] * terms.weight_bytes / 1e6
    return coef[0] + coef[1] * terms.flops / 1e9 + coef[2] * terms.operators


def features(
    lowered: LoweredGraph, weights: dict[str, WeightInfo], profile: DeviceProfile
) -> dict[str, float]:
    """A summary of the model's terms (seconds per kernel kind at the profile's roofline,
    re-streamed GB per level, kernel count), for reports; calibration fits
    :func:`cost_terms` directly."""
    out: dict[str, float] = {str(kind): 0.0 for kind in KERNEL_KINDS}
    out.update({f"restream_{lv}": 0.0 for lv in RESTREAM_LEVELS})
    prepared = PreparedGraph(model=None, structure_hash="", inputs=(), weights=weights)
    terms = cost_terms(prepared, lowered, profile)
    p = dataclasses.replace(
        LatencyParams.of(profile), kind_scale=(1.0,) * len(KERNEL_KINDS), launch_s=0.0
    )
    secs = kernel_seconds_of(terms, p)
    for i, kind in enumerate(KERNEL_KINDS):
        out[kind] = float(secs[terms.kind == i].sum())
    for j, lv in enumerate(RESTREAM_LEVELS):
        out[f"restream_{lv}"] = float(terms.restream[:, j].sum() / 1e9)
    out["kernels"] = float(terms.kernels)
    return out


def lower_cached(
    prepared: PreparedGraph, profile: DeviceProfile, *, use_cache: bool = True
) -> tuple[LoweredGraph, bool]:
    """The kernel table of ``prepared`` on ``profile``'s target, from the cache if present."""
    key = cache_key(prepared.structure_hash, profile.target_key)
    if use_cache:
        hit = cache_get(key)
        if hit is not None:
            return hit, True
    lowered, _ = lower(prepared, profile.target, profile.target_host)
    if use_cache:
        cache_put(key, lowered)
    return lowered, False


def _mb(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def cost(
    prepared: PreparedGraph,
    lowered: LoweredGraph,
    profile: DeviceProfile,
    *,
    cache_hit: bool = False,
) -> Prediction:
    """Apply ``profile`` to a kernel table (no TVM involved: cheap)."""
    weights = prepared.weights
    live = [k for k in lowered.kernels if not k.weight_dequantize]
    works = [_kernel_work(k, weights, profile) for k in live]
    terms = cost_terms(prepared, lowered, profile)
    params = LatencyParams.of(profile)
    secs = kernel_seconds_of(terms, params)
    # per-operator dispatch is spread over the kernels (it is paid around them)
    per_kernel_ops = terms.operators * params.op_s / max(1, terms.kernels)
    model_s = float(secs.sum()) + terms.operators * params.op_s + params.call_s
    total_s = model_s
    blend = profile.proxy_blend
    if blend is not None:
        proxy_s = proxy_value(terms, blend.proxy, blend.coef) * 1e-3
        total_s = (1 - blend.weight) * model_s + blend.weight * proxy_s
    # a blended prediction rescales the kernels so that they still sum to the total
    ratio = total_s / model_s if model_s > 0 else 1.0
    kernels = tuple(
        KernelCost(
            name=k.name,
            kind=work.kind,
            dtype=work.dtype,
            ops=work.ops + work.int8_extra_ops,
            bytes=work.bytes,
            latency_ms=(t + per_kernel_ops) * ratio * 1e3,
            share=(t + per_kernel_ops) * ratio / total_s,
        )
        for k, work, t in zip(live, works, secs, strict=True)
    )
    weight_bytes = int(sum(stored_weight_bytes(w, profile) for w in weights.values()))
    activation = int(lowered.peak_activation_bytes)
    peak = weight_bytes + activation
    violations = []
    flash = sram = None
    if profile.kind == "mcu":
        flash, sram = _mcu_memory(prepared, lowered, profile, weight_bytes)
        if profile.flash_bytes is not None and flash > profile.flash_bytes:
            violations.append(f"flash {_mb(flash)} > {_mb(profile.flash_bytes)}")
        if profile.sram_bytes is not None and sram > profile.sram_bytes:
            violations.append(f"sram {_mb(sram)} > {_mb(profile.sram_bytes)}")
    if profile.ram_bytes is not None and peak > profile.ram_bytes:
        violations.append(f"ram {_mb(peak)} > {_mb(profile.ram_bytes)}")
    latency_ms = total_s * 1e3
    return Prediction(
        device=profile.name,
        runtime=profile.runtime,
        latency_ms=latency_ms,
        peak_memory_bytes=peak,
        weight_bytes=weight_bytes,
        activation_bytes=activation,
        flash_bytes=flash,
        sram_bytes=sram,
        energy_mj=profile.active_w * latency_ms,
        kernels=kernels,
        violations=tuple(violations),
        structure_hash=prepared.structure_hash,
        cache_hit=cache_hit,
    )


def _mcu_memory(
    prepared: PreparedGraph, lowered: LoweredGraph, profile: DeviceProfile, weight_bytes: int
) -> tuple[int, int]:
    """Flash and SRAM of a microcontroller deployment, in the profile's runtime.

    ``tflite-micro``: the flatbuffer our TFLM export writes and TFLM's tensor arena,
    modelled from its allocator (:mod:`._tflm_arena`) on the schedule of the export
    (:mod:`._tflm_bert`). A graph that schedule does not describe falls back to the TVM
    view (weights + kernel code; TVM's activation peak) with a warning.
    """
    if profile.memory_runtime == "tflite-micro":
        from ._tflm_arena import arena_bytes
        from ._tflm_bert import bert_structure, flatbuffer_bytes, tflm_schedule

        structure = bert_structure(prepared)
        if structure is not None:
            graph, consts = tflm_schedule(structure, pointer_bytes=profile.pointer_bytes)
            arena = arena_bytes(graph, pointer_bytes=profile.pointer_bytes)
            return flatbuffer_bytes(graph, consts), arena.arena_bytes
        log.warning(
            "%s: not a BERT graph the TFLM export writes; flash/SRAM from the TVM build",
            profile.name,
        )
    return weight_bytes + lowered.code_bytes, int(lowered.peak_activation_bytes)


def predict(
    onnx_path: Path | str, device: DeviceProfile | str, *, use_cache: bool = True
) -> Prediction:
    """Predict latency, memory and energy of an ONNX model on a device.

    Works on any static-shape ONNX file; reads ``paretoedge.layers`` metadata when present and
    recognises QDQ int8 otherwise. The TVM build is cached on disk by graph structure and
    target (``get_settings().cost_cache``), so weight-only changes cost no new build.

    Raises:
        UnknownNameError: Unknown device name.
        DeviceError: Malformed profile.
        LoweringError: The file is not valid ONNX, has dynamic shapes, or TVM cannot
            import or build it for the device's target.
    """
    profile = resolve_profile(device)
    prepared = prepare(Path(onnx_path))
    lowered, hit = lower_cached(prepared, profile, use_cache=use_cache)
    if not lowered.kernels:
        raise LoweringError(f"{onnx_path}: TVM produced no kernels for this model")
    return cost(prepared, lowered, profile, cache_hit=hit)
