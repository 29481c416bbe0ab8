"""The runtimes the kit times a model file in: one adapter each, registered by name.

Every adapter imports its runtime inside :meth:`RuntimeAdapter.load`, so listing or
choosing a runtime imports nothing heavy, and a board needs only the runtime it uses
(plus numpy). None of them imports TVM, Optuna or the search stack; only the ExecuTorch
adapter imports torch, because ExecuTorch's Python runtime takes torch tensors.

Inputs are synthetic and follow the file's declared static shapes: token ids drawn from a
fixed seed, all-ones attention masks, zero token-type ids (latency does not depend on the
values for these models).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from paretoedge._registry import Registry
from paretoedge.errors import DataError, ParetoEdgeError

RunFn = Callable[[], object]


class RuntimeMissingError(ParetoEdgeError):
    """The runtime asked for is not installed on this machine."""

    def __init__(self, runtime: str, install: str) -> None:
        super().__init__(f"runtime {runtime!r} is not installed: {install}")


def synthetic_input(name: str, shape: Sequence[Any], integer: bool, *, seed: int = 0) -> Any:
    """One input array for ``name`` of static ``shape``.

    Raises:
        DataError: A dimension is symbolic or non-positive (the kit times static shapes,
            as exported by ``paretoedge export`` and ``export-set``).
    """
    dims = []
    for d in shape:
        if not isinstance(d, int | np.integer) or int(d) < 1:
            raise DataError(
                f"input {name!r} has dimension {d!r} in shape {list(shape)}: "
                "the kit needs static shapes (export with a fixed batch and sequence length)"
            )
        dims.append(int(d))
    if not integer:
        return np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    lowered = name.lower()
    if "mask" in lowered:
        return np.ones(dims, dtype=np.int64)
    if "type" in lowered:
        return np.zeros(dims, dtype=np.int64)
    return np.random.default_rng(seed).integers(0, 100, size=dims).astype(np.int64)


class RuntimeAdapter(abc.ABC):
    """Loads a model file into one runtime with a fixed thread count.

    Contract: :meth:`load` returns a function running one inference on bound synthetic
    inputs; it pins the runtime's intra-op threads to ``threads`` (and its inter-op pool to
    1 where the runtime has one). Raises :class:`RuntimeMissingError` when the runtime is not
    installed and :class:`~paretoedge.errors.DataError` for a file it cannot load.
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def load(self, path: Path, *, threads: int) -> RunFn: ...


RUNTIMES: Registry[type[RuntimeAdapter]] = Registry("runtime")


def get_runtime(name: str) -> RuntimeAdapter:
    """The adapter registered as ``name`` (``ConfigError`` listing the known ones)."""
    return RUNTIMES.get(name)()


@RUNTIMES.register("onnxruntime")
class OnnxRuntimeAdapter(RuntimeAdapter):
    """onnxruntime's CPU execution provider, sequential execution, default optimisations."""

    name = "onnxruntime"
    suffixes = (".onnx",)

    def load(self, path: Path, *, threads: int) -> RunFn:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeMissingError(
                self.name, "pip install 'paretoedge[measure]' (or pip install onnxruntime)"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DataError(f"{path}: onnxruntime cannot load it: {exc}") from None
        feeds = {
            i.name: synthetic_input(i.name, i.shape, "int" in i.type) for i in session.get_inputs()
        }
        return lambda: session.run(None, feeds)


@RUNTIMES.register("executorch")
class ExecuTorchAdapter(RuntimeAdapter):
    """ExecuTorch's Python runtime (``executorch.runtime``) running a ``.pte`` program.

    XNNPACK sizes its thread pool itself; ``threads`` is applied through CPU pinning by the
    caller (``--cpus``), and recorded in the CSV.
    """

    name = "executorch"
    suffixes = (".pte",)

    def load(self, path: Path, *, threads: int) -> RunFn:
        try:
            import torch
            from executorch.runtime import Runtime
        except ImportError:
            raise RuntimeMissingError(
                self.name, "pip install 'paretoedge[executorch]' (or pip install executorch)"
            ) from None
        try:
            method = Runtime.get().load_program(Path(path)).load_method("forward")
        except Exception as exc:  # the runtime's pybind errors
            raise DataError(f"{path}: ExecuTorch cannot load its forward method: {exc}") from None
        meta = method.metadata
        inputs = []
        for i in range(meta.num_inputs()):
            tensor = meta.input_tensor_meta(i)
            integer = "long" in str(tensor.dtype()).lower() or "int" in str(tensor.dtype()).lower()
            inputs.append(
                torch.from_numpy(synthetic_input(f"input{i}", list(tensor.sizes()), integer))
            )
        args = tuple(inputs)
        return lambda: method.execute(args)


@RUNTIMES.register("tflite")
class TfliteAdapter(RuntimeAdapter):
    """The LiteRT (TensorFlow Lite) interpreter running a ``.tflite`` flatbuffer."""

    name = "tflite"
    suffixes = (".tflite",)

    def load(self, path: Path, *, threads: int) -> RunFn:
        import importlib

        interpreter_cls: Any = None
        for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
            try:
                interpreter_cls = importlib.import_module(module).Interpreter
                break
            except ImportError:
                continue
        if interpreter_cls is None:
            raise RuntimeMissingError(
                self.name, "pip install ai-edge-litert (the LiteRT interpreter)"
            )
        try:
            interp = interpreter_cls(model_path=str(path), num_threads=threads)
            interp.allocate_tensors()
        except Exception as exc:  # ValueError/RuntimeError from the interpreter
            raise DataError(f"{path}: the LiteRT interpreter cannot load it: {exc}") from None
        for detail in interp.get_input_details():
            dtype = np.dtype(detail["dtype"])
            arr = synthetic_input(
                detail["name"], list(detail["shape"]), np.issubdtype(dtype, np.integer)
            )
            interp.set_tensor(detail["index"], arr.astype(dtype))
        return interp.invoke
