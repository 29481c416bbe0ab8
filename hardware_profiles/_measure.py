"""Real measurements on this machine: the TVM-built module in the Relax VM, and onnxruntime.

These are the ground truth the host profiles are fitted against. The machine may be shared,
so every figure is the median of several timed repeats after warm-up runs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._cache import cache_key, cache_put
from ._graph import PreparedGraph, prepare
from ._lower import lower
from ._profile import DeviceProfile, resolve_profile


@dataclass(frozen=True)
class Measurement:
    """Median wall time of one inference (ms) and the spread of the repeats."""

    runtime: str
    median_ms: float
    min_ms: float
    repeats: int


def example_inputs(prepared: PreparedGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs matching the graph's static shapes: token ids, all-ones masks, zero type ids."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for name, shape, dtype in prepared.inputs:
        if np.issubdtype(np.dtype(dtype), np.integer):
            if "mask" in name:
                arr = np.ones(shape, dtype=dtype)
            elif "type" in name:
                arr = np.zeros(shape, dtype=dtype)
            else:
                arr = rng.integers(0, 100, size=shape).astype(dtype)
        else:
            arr = rng.standard_normal(shape).astype(dtype)
        feeds[name] = arr
    return feeds


def _time(fn, repeats: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples)


class TvmRunner:
    """A model built for this machine's target and loaded into the Relax VM."""

    def __init__(self, onnx_path: Path, profile: DeviceProfile | str = "host") -> None:
        import tvm
        from tvm import relax

        from ._lower import import_relax

        self.profile = resolve_profile(profile)
        self.prepared = prepare(Path(onnx_path))
        lowered, executable = lower(
            self.prepared, self.profile.target, self.profile.target_host, keep_executable=True
        )
        # the build is paid anyway: keep its kernel table for later predictions
        cache_put(cache_key(self.prepared.structure_hash, self.profile.target_key), lowered)
        _, params = import_relax(self.prepared)
        dev = tvm.cpu()
        self._vm = relax.VirtualMachine(executable, dev)
        self._params = [tvm.runtime.tensor(p.numpy(), dev) for p in params["main"]]
        self._tvm = tvm

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        args = [self._tvm.runtime.tensor(feeds[name]) for name, _, _ in self.prepared.inputs]
        out = self._vm["main"](*args, *self._params)
        outs = out if isinstance(out, (list, tuple)) else [out]
        if hasattr(out, "numpy"):
            outs = [out]
        return [np.asarray(o.numpy()) for o in outs]


def ort_session(onnx_path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def measure_tvm(onnx_path: Path, *, repeats: int = 15, warmup: int = 3) -> Measurement:
    """Median latency of the TVM default build of ``onnx_path`` in the Relax VM."""
    runner = TvmRunner(onnx_path, "host")
    feeds = example_inputs(runner.prepared)
    median, best = _time(lambda: runner.run(feeds), repeats, warmup)
    return Measurement("tvm-default", median, best, repeats)


def measure_ort(onnx_path: Path, *, repeats: int = 50, warmup: int = 5) -> Measurement:
    """Median latency of onnxruntime (CPU execution provider, default options)."""
    prepared = prepare(Path(onnx_path))
    session = ort_session(onnx_path)
    feeds = example_inputs(prepared)
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    median, best = _time(lambda: session.run(None, feeds), repeats, warmup)
    return Measurement("onnxruntime", median, best, repeats)


def _matmul_onnx(path: Path, m: int, k: int, n: int) -> Path:
    """A one-MatMul ONNX graph: activations ``1 x m x k`` times a ``k x n`` weight."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w0")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, m, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m, n])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w0"], ["y"])], "matmul", [x], [y], [weight]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def kernel_seconds(runner: TvmRunner, *, repeats: int, warmup: int = 2) -> list[float]:
    """Fastest wall time of each kernel call of one inference (VM builtins excluded), timed
    around the call by the Relax VM's instrument hook: the per-kernel truth for a model."""
    feeds = example_inputs(runner.prepared)
    clock = time.perf_counter
    started = [0.0]
    calls: list[float] = []

    def instrument(func, symbol, before, ret, *args) -> int:  # noqa: ANN001
        if symbol.startswith("vm."):
            return 0
        if before:
            started[0] = clock()
        else:
            calls.append(clock() - started[0])
        return 0

    for _ in range(warmup):
        runner.run(feeds)
    runner._vm.set_instrument(instrument)
    best: list[float] | None = None
    for _ in range(repeats):
        calls.clear()
        runner.run(feeds)
        best = (
            list(calls) if best is None else [min(a, b) for a, b in zip(best, calls, strict=True)]
        )
    return best or []


def measure_matmul_table(
    ks: list[int], ns: list[int], *, m: int = 64, profile: DeviceProfile | str = "host"
) -> list[list[float]]:
    """Nanoseconds per multiply-add of ``profile``'s TVM matmul kernel on this machine, for
    every weight shape ``K x N`` of the grid (rows K, columns N), at ``m`` activation rows.

    Each shape is built through the same pipeline as a candidate (:func:`lower`) and timed
    in the Relax VM; repeats adapt to the kernel's length (at least 3, about 0.3 s each).
    """
    import tempfile

    table: list[list[float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in ks:
            row = []
            for n in ns:
                path = _matmul_onnx(Path(tmp) / f"mm-{m}-{k}-{n}.onnx", m, k, n)
                runner = TvmRunner(path, profile)
                first = kernel_seconds(runner, repeats=1, warmup=1)[0]
                repeats = max(3, min(15, int(0.3 / max(first, 1e-6))))
                seconds = kernel_seconds(runner, repeats=repeats, warmup=0)[0]
                row.append(seconds * 1e9 / (m * k * n))
            table.append(row)
    return table
