"""Device profiles: typed, validated YAML files describing one (device, runtime) pair.

A profile is data, not code (as nn-Meter keeps its devices): bundled profiles live in
``hardware_profiles/devices/*.yaml`` (package data, read with importlib.resources) and a
user adds a device by dropping a YAML file into ``$PARETOEDGE_DEVICES_DIR``
(:func:`paretoedge.settings.get_settings`). The YAML is validated by a pydantic schema at
the edge and turned into a frozen :class:`DeviceProfile`; a malformed file raises
:class:`~paretoedge.errors.DeviceError` naming the file and the field.

The ``kernel_scale`` factors belong to the ``runtime`` the profile names: they multiply the
roofline time of each kernel kind, so they are the inverse of the fraction of the roofline
that runtime reaches on that device. ``paretoedge calibrate`` fits them from measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from paretoedge.errors import DeviceError, UnknownNameError

DeviceKind = Literal["cpu", "gpu", "mcu"]
Runtime = Literal["tvm-default", "tvm-tuned", "onnxruntime", "pytorch-eager"]
#: What an MCU's flash/SRAM are modelled as: TVM's build (weights + kernel code, activation
#: peak) or TensorFlow Lite Micro's flatbuffer and tensor arena (``_tflm_arena``).
MemoryRuntime = Literal["tvm", "tflite-micro"]
KernelKind = Literal["matmul", "reduction", "elementwise", "gather", "layout"]
KERNEL_KINDS: tuple[KernelKind, ...] = ("matmul", "reduction", "elementwise", "gather", "layout")
ComputeDtype = Literal["fp32", "fp16", "int8"]
ProxyKind = Literal["flops", "weight_bytes", "flops_ops"]
PROXY_KINDS: tuple[ProxyKind, ...] = ("flops", "weight_bytes", "flops_ops")


class _Peak(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fp32: float = Field(gt=0)
    fp16: float = Field(gt=0)
    int8: float = Field(gt=0)


class _SubByte(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["unpack-int8", "native"]
    unpack_ops_per_weight: float = Field(ge=0)


class _Sparse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(ge=0, le=1)
    overhead: float = Field(ge=1)
    index_bytes: float = Field(ge=0)


class _Restream(BaseModel):
    model_config = ConfigDict(extra="forbid")
    l2: float = Field(gt=0)
    l3: float = Field(gt=0)
    dram: float = Field(gt=0)


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ram_mb: float | None = Field(default=None, gt=0)
    flash_kb: float | None = Field(default=None, gt=0)
    sram_kb: float | None = Field(default=None, gt=0)


class _Memory(BaseModel):
    """How the device's memory is modelled (see :class:`DeviceProfile`)."""

    model_config = ConfigDict(extra="forbid")
    runtime: MemoryRuntime = "tvm"
    pointer_bytes: Literal[4, 8] = 4


class _Power(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active_w: float = Field(gt=0)


class _Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matmul: float = Field(gt=0)
    reduction: float = Field(gt=0)
    elementwise: float = Field(gt=0)
    gather: float = Field(gt=0)
    layout: float = Field(gt=0)


class _MatmulTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: list[int] = Field(min_length=1)
    n: list[int] = Field(min_length=1)
    ns_per_mac: list[list[float]] = Field(min_length=1)
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> _MatmulTable:
        for axis in ("k", "n"):
            values = getattr(self, axis)
            if any(v < 1 for v in values) or any(
                b <= a for a, b in zip(values, values[1:], strict=False)
            ):
                raise ValueError(f"{axis} must be increasing positive integers")
        if len(self.ns_per_mac) != len(self.k) or any(
            len(row) != len(self.n) for row in self.ns_per_mac
        ):
            raise ValueError(f"ns_per_mac must be {len(self.k)} rows of {len(self.n)} numbers")
        if any(not v > 0 for row in self.ns_per_mac for v in row):
            raise ValueError("ns_per_mac values must be positive")
        return self


@dataclass(frozen=True)
class MatmulTable:
    """Measured nanoseconds per multiply-add of the runtime's matmul kernel by the shape
    ``K x N`` of its second operand (the weight), interpolated in log space.

    Untuned loop nests (TVM's default CPU build) walk a column of the weight per output
    element; how fast that is depends on cache-set conflicts and prefetching in ways no
    datasheet gives (on this host, 4.5 to 0.16 G multiply-adds/s at the same work), but
    not on ``M`` (measured), so a K x N grid measured once per device predicts every
    matmul. This is nn-Meter's approach (kernel-level predictors from measured kernels)
    with a lookup table instead of a random forest.
    """

    k: tuple[int, ...]
    n: tuple[int, ...]
    ns_per_mac: tuple[tuple[float, ...], ...]
    source: str = ""

    def ns(self, k: int, n: int) -> float:
        """Nanoseconds per multiply-add at ``k x n`` (bilinear in log K, log N, log ns;
        clamped at the table's edges)."""
        import math

        def locate(axis: tuple[int, ...], v: int) -> tuple[int, int, float]:
            x = math.log(max(v, 1))
            logs = [math.log(a) for a in axis]
            if x <= logs[0]:
                return 0, 0, 0.0
            if x >= logs[-1]:
                return len(axis) - 1, len(axis) - 1, 0.0
            hi = next(i for i, lv in enumerate(logs) if lv >= x)
            lo = hi - 1
            return lo, hi, (x - logs[lo]) / (logs[hi] - logs[lo])

        k0, k1, fk = locate(self.k, k)
        n0, n1, fn = locate(self.n, n)
        t = self.ns_per_mac
        ln = math.log
        top = (1 - fn) * ln(t[k0][n0]) + fn * ln(t[k0][n1])
        bottom = (1 - fn) * ln(t[k1][n0]) + fn * ln(t[k1][n1])
        return math.exp((1 - fk) * top + fk * bottom)

    @staticmethod
    def from_dict(data: Any, source: str = "matmul_table") -> MatmulTable:
        """A validated table from its YAML/JSON form (``k``, ``n``, ``ns_per_mac``).

        Raises:
            DeviceError: A malformed table (names ``source`` and the problem).
        """
        try:
            return _table_of(_MatmulTable.model_validate(data))
        except ValidationError as exc:
            raise DeviceError(f"{source}: invalid matmul table: {exc.errors()[0]['msg']}") from None

    def to_yaml_dict(self) -> dict[str, Any]:
        return {
            "k": list(self.k),
            "n": list(self.n),
            "ns_per_mac": [[round(v, 5) for v in row] for row in self.ns_per_mac],
            "source": self.source,
        }


def _table_of(s: _MatmulTable) -> MatmulTable:
    return MatmulTable(
        k=tuple(s.k),
        n=tuple(s.n),
        ns_per_mac=tuple(tuple(row) for row in s.ns_per_mac),
        source=s.source,
    )


class _ProxyBlend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    proxy: ProxyKind
    weight: float = Field(gt=0, le=1)
    coef: list[float] = Field(min_length=2, max_length=3)
    reason: str = ""

    @model_validator(mode="after")
    def _check(self) -> _ProxyBlend:
        want = 3 if self.proxy == "flops_ops" else 2
        if len(self.coef) != want:
            raise ValueError(f"coef of proxy {self.proxy} must be {want} numbers")
        if any(not c >= 0 for c in self.coef):
            raise ValueError("coef values must be >= 0")
        return self


@dataclass(frozen=True)
class ProxyBlend:
    """A calibrated profile's fallback: ``latency = (1 - weight) * model + weight * proxy``.

    ``calibrate`` sets it only when cross-validation on the user's rows shows the cost model
    doing worse on held-out rows than a plain least-squares proxy (``flops``: ms = c0 + c1 *
    GFLOP; ``weight_bytes``: c0 + c1 * weight MB; ``flops_ops``: c0 + c1 * GFLOP + c2 *
    operators), so a prediction never falls behind the simple count it was checked against.
    """

    proxy: ProxyKind
    weight: float
    coef: tuple[float, ...]
    reason: str = ""

    def to_yaml_dict(self) -> dict[str, Any]:
        return {
            "proxy": self.proxy,
            "weight": self.weight,
            "coef": list(self.coef),
            "reason": self.reason,
        }


class _ProfileSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    kind: DeviceKind
    runtime: Runtime
    target: dict[str, Any]
    target_host: dict[str, Any] | None = None
    clock_ghz: float = Field(gt=0)
    cores: int = Field(ge=1)
    peak_gops: _Peak
    subbyte: _SubByte
    memory_bandwidth_gbs: float = Field(gt=0)
    cache_bandwidth_gbs: float | None = Field(default=None, gt=0)
    cache_kb: dict[str, float]
    schedule: Literal["tiled", "naive"]
    restream_gbs: _Restream
    launch_overhead_us: float = Field(ge=0)
    call_overhead_us: float = Field(ge=0)
    op_overhead_us: float = Field(default=0.0, ge=0)
    matvec_compute_scale: float = Field(default=1.0, gt=0)
    sparse: _Sparse
    limits: _Limits
    memory: _Memory = Field(default_factory=_Memory)
    power: _Power
    kernel_scale: _Scale
    matmul_table: _MatmulTable | None = None
    proxy_blend: _ProxyBlend | None = None
    calibration: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeviceProfile:
    """One device and the runtime whose speed it models.

    Attributes:
        name: Registry name (``rpi4``); also the YAML file stem.
        kind: ``cpu``, ``gpu`` or ``mcu``.
        runtime: The runtime the ``kernel_scale`` factors were fitted for.
        target: TVM target as a JSON dict (``{"kind": "llvm", "mtriple": ...}``).
        target_host: Host target for GPU targets, or None.
        peak_gops: Peak throughput per compute dtype in Gop/s (a multiply-add is 2 ops).
        subbyte_mode / unpack_ops_per_weight: How weights under 8 bits are computed: unpacked
            to int8 at that many extra ops per weight, or natively. Binary and ternary
            (1/2-bit) weights always run as int8 kernels (unpacked, activations quantized on
            the fly); XNOR-popcount would need binary activations, which nothing produces.
        memory_bandwidth_gbs: Sustained DRAM bandwidth in GB/s: what weight streaming costs
            when the model's weights do not fit the last-level cache (one-token decoder steps,
            batch <= 8, are bound by it).
        cache_bandwidth_gbs: Bandwidth of memory-bound kernels whose operands stay in the
            caches (GB/s); None means the DRAM figure (the old, single-level model).
        schedule: ``tiled`` (the runtime blocks matmuls for cache reuse: only compulsory
            traffic) or ``naive`` (untuned loop nests: the weight operand is re-read once per
            output row, from the cache level that holds it, a whole cache line per element
            when a column does not stay in L1).
        restream_gbs: Effective bandwidth of those re-reads per level (l2, l3, dram).
        launch_overhead_us: Cost of launching one kernel; call_overhead_us: one inference.
        op_overhead_us: Per-operator cost of the runtime's dispatch, counted on the ONNX graph
            (an eager framework pays it once per operator, around 5-20 us in PyTorch; graph
            runtimes a few hundred ns).
        matvec_compute_scale: Multiplier on the compute time of matrix-vector work (a matmul
            whose weight is shared by at most 8 rows: one-token decoder steps, batch <= 8);
            GEMM kernels tiled for many rows reach a smaller fraction of peak there.
        sparse_threshold / sparse_overhead / sparse_index_bytes: Unstructured sparsity pays only
            at or above the threshold; then work is ``density * overhead`` of dense and each
            non-zero weight stores ``index_bytes`` extra.
        ram_bytes, flash_bytes, sram_bytes: Memory limits (None where not applicable).
        memory_runtime: ``tflite-micro``: an MCU's flash is the TFLM flatbuffer and its
            SRAM the tensor arena, both modelled from TFLM's allocator
            (:mod:`._tflm_arena`); ``tvm``: weights + TVM kernel code and TVM's
            activation peak.
        pointer_bytes: Pointer width of the MCU (4 on Cortex-M): TFLM's structs scale with
            it.
        active_w: Power in watts while running inference (energy = power x latency).
        kernel_scale: Multiplier on the roofline time per kernel kind (1 / efficiency); for
            matmuls costed from ``matmul_table``, a multiplier on the table's time.
        matmul_table: Measured matmul cost by weight shape (:class:`MatmulTable`); when set,
            it replaces the roofline and re-stream terms of matmul kernels.
        proxy_blend: Set by calibration when a simple proxy beat the model in
            cross-validation (:class:`ProxyBlend`).
        source: Where the profile was read from.
    """

    name: str
    description: str
    kind: DeviceKind
    runtime: Runtime
    target: dict[str, Any]
    target_host: dict[str, Any] | None
    clock_ghz: float
    cores: int
    peak_gops: dict[str, float]
    subbyte_mode: str
    unpack_ops_per_weight: float
    memory_bandwidth_gbs: float
    cache_kb: dict[str, float]
    schedule: str
    restream_gbs: dict[str, float]
    launch_overhead_us: float
    call_overhead_us: float
    sparse_threshold: float
    sparse_overhead: float
    sparse_index_bytes: float
    ram_bytes: int | None
    flash_bytes: int | None
    sram_bytes: int | None
    active_w: float
    kernel_scale: dict[str, float]
    calibration: dict[str, Any] | None = None
    source: str = field(default="", compare=False)
    matmul_table: MatmulTable | None = None
    cache_bandwidth_gbs: float | None = None
    op_overhead_us: float = 0.0
    proxy_blend: ProxyBlend | None = None
    matvec_compute_scale: float = 1.0
    memory_runtime: MemoryRuntime = "tvm"
    pointer_bytes: int = 4

    @property
    def llc_bytes(self) -> float:
        """Bytes of the last-level cache (largest of ``l2``/``l3``; the L1 if that is all)."""
        levels = [v for k, v in self.cache_kb.items() if k in ("l2", "l3")]
        if not levels:
            levels = [v for k, v in self.cache_kb.items() if k.startswith("l1") and "way" not in k]
        return max(levels, default=0.0) * 1024

    @property
    def cache_gbs(self) -> float:
        """Effective bandwidth of cache-resident operands (GB/s)."""
        return self.cache_bandwidth_gbs or self.memory_bandwidth_gbs

    @property
    def target_key(self) -> str:
        """Canonical JSON of the target (and host): part of the compiled-cost cache key."""
        return json.dumps({"target": self.target, "host": self.target_host}, sort_keys=True)

    def to_yaml_dict(self) -> dict[str, Any]:
        """The profile in the YAML schema (what :func:`write_profile` writes)."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "runtime": self.runtime,
            "target": self.target,
            "target_host": self.target_host,
            "clock_ghz": self.clock_ghz,
            "cores": self.cores,
            "peak_gops": dict(self.peak_gops),
            "subbyte": {
                "mode": self.subbyte_mode,
                "unpack_ops_per_weight": self.unpack_ops_per_weight,
            },
            "memory_bandwidth_gbs": self.memory_bandwidth_gbs,
            "cache_bandwidth_gbs": self.cache_bandwidth_gbs,
            "cache_kb": dict(self.cache_kb),
            "schedule": self.schedule,
            "restream_gbs": dict(self.restream_gbs),
            "launch_overhead_us": self.launch_overhead_us,
            "call_overhead_us": self.call_overhead_us,
            "op_overhead_us": self.op_overhead_us,
            "matvec_compute_scale": self.matvec_compute_scale,
            "sparse": {
                "threshold": self.sparse_threshold,
                "overhead": self.sparse_overhead,
                "index_bytes": self.sparse_index_bytes,
            },
            "limits": {
                "ram_mb": None if self.ram_bytes is None else self.ram_bytes / 2**20,
                "flash_kb": None if self.flash_bytes is None else self.flash_bytes / 2**10,
                "sram_kb": None if self.sram_bytes is None else self.sram_bytes / 2**10,
            },
            "memory": {"runtime": self.memory_runtime, "pointer_bytes": self.pointer_bytes},
            "power": {"active_w": self.active_w},
            "kernel_scale": dict(self.kernel_scale),
            "matmul_table": None if self.matmul_table is None else self.matmul_table.to_yaml_dict(),
            "proxy_blend": None if self.proxy_blend is None else self.proxy_blend.to_yaml_dict(),
            "calibration": self.calibration,
        }


def _from_schema(s: _ProfileSchema, source: str) -> DeviceProfile:
    lim = s.limits
    return DeviceProfile(
        name=s.name,
        description=s.description,
        kind=s.kind,
        runtime=s.runtime,
        target=dict(s.target),
        target_host=None if s.target_host is None else dict(s.target_host),
        clock_ghz=s.clock_ghz,
        cores=s.cores,
        peak_gops=s.peak_gops.model_dump(),
        subbyte_mode=s.subbyte.mode,
        unpack_ops_per_weight=s.subbyte.unpack_ops_per_weight,
        memory_bandwidth_gbs=s.memory_bandwidth_gbs,
        cache_kb=dict(s.cache_kb),
        schedule=s.schedule,
        restream_gbs=s.restream_gbs.model_dump(),
        launch_overhead_us=s.launch_overhead_us,
        call_overhead_us=s.call_overhead_us,
        sparse_threshold=s.sparse.threshold,
        sparse_overhead=s.sparse.overhead,
        sparse_index_bytes=s.sparse.index_bytes,
        ram_bytes=None if lim.ram_mb is None else int(lim.ram_mb * 2**20),
        flash_bytes=None if lim.flash_kb is None else int(lim.flash_kb * 2**10),
        sram_bytes=None if lim.sram_kb is None else int(lim.sram_kb * 2**10),
        active_w=s.power.active_w,
        memory_runtime=s.memory.runtime,
        pointer_bytes=s.memory.pointer_bytes,
        kernel_scale=s.kernel_scale.model_dump(),
        calibration=s.calibration,
        source=source,
        matmul_table=None if s.matmul_table is None else _table_of(s.matmul_table),
        cache_bandwidth_gbs=s.cache_bandwidth_gbs,
        op_overhead_us=s.op_overhead_us,
        matvec_compute_scale=s.matvec_compute_scale,
        proxy_blend=None
        if s.proxy_blend is None
        else ProxyBlend(
            proxy=s.proxy_blend.proxy,
            weight=s.proxy_blend.weight,
            coef=tuple(s.proxy_blend.coef),
            reason=s.proxy_blend.reason,
        ),
    )


def _short_repr(value: Any, limit: int = 60) -> str:
    """``repr`` of an invalid value, cut to ``limit`` characters (a whole matmul table
    would otherwise fill the terminal while the message names the field anyway)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_profile(text: str, source: str) -> DeviceProfile:
    """Validate YAML text into a profile; errors name ``source`` and the field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeviceError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise DeviceError(f"{source}: a device profile must be a mapping of fields")
    try:
        schema = _ProfileSchema.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        value = err.get("input")
        shown = "" if err["type"] == "missing" else f"={_short_repr(value)}"
        raise DeviceError(f"{source}: invalid field {loc}{shown}: {err['msg']}") from None
    return _from_schema(schema, source)


def _bundled_texts() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    root = resources.files("paretoedge.hardware_profiles") / "devices"
    for entry in root.iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = (entry.read_text(), f"bundled:{entry.name}")
    return out


def _user_texts() -> dict[str, tuple[str, str]]:
    from paretoedge.settings import get_settings

    directory = get_settings().devices_dir
    out: dict[str, tuple[str, str]] = {}
    if directory is None:
        return out
    directory = Path(directory)
    if not directory.is_dir():
        raise DeviceError(f"PARETOEDGE_DEVICES_DIR={str(directory)!r} is not a directory")
    for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
        out[path.stem] = (path.read_text(), str(path))
    return out


def _all_texts() -> dict[str, tuple[str, str]]:
    texts = _bundled_texts()
    texts.update(_user_texts())  # a user file with a bundled name overrides it
    return texts


def profile_names() -> list[str]:
    """Names of every known device (bundled and user), without validating them."""
    return sorted(_all_texts())


def load_profile(name: str) -> DeviceProfile:
    """The validated profile called ``name``.

    Raises:
        UnknownNameError: No bundled or user profile has that name (lists the known ones).
        DeviceError: The file is malformed (names the file and the field).
    """
    texts = _all_texts()
    if name not in texts:
        raise UnknownNameError("device", name, texts)
    text, source = texts[name]
    profile = parse_profile(text, source)
    if profile.name != name:
        raise DeviceError(f"{source}: field name={profile.name!r} differs from file name {name!r}")
    return profile


def list_profiles() -> list[DeviceProfile]:
    """Every known profile, validated, sorted by name."""
    return [load_profile(n) for n in profile_names()]


def resolve_profile(device: DeviceProfile | str) -> DeviceProfile:
    """Accept a profile or a device name."""
    return device if isinstance(device, DeviceProfile) else load_profile(device)


class _FlowListDumper(yaml.SafeDumper):
    """Writes a list of scalars on one line (a table row of the matmul table, a target's
    ``mattr``), everything else in block style."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(x, (list, dict)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowListDumper.add_representer(list, _represent_list)


def write_profile(profile: DeviceProfile, path: Path, *, header: str = "") -> Path:
    """Write ``profile`` as YAML (round-trips through :func:`parse_profile`)."""
    body = yaml.dump(profile.to_yaml_dict(), Dumper=_FlowListDumper, sort_keys=False, width=100)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comment + body)
    parse_profile(path.read_text(), str(path))
    return path
