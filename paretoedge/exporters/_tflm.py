"""int8 LiteRT flatbuffers for TensorFlow Lite Micro, and their measured memory.

What STM32-class users run is a ``.tflite`` flatbuffer in TensorFlow Lite Micro (TFLM):
the flatbuffer lives in flash, and every tensor, the interpreter's bookkeeping and the
kernels' scratch buffers live in one "tensor arena" in SRAM whose size the firmware fixes.
Both are measured here, not modelled:

* flash: the flatbuffer's size in bytes;
* SRAM: the smallest arena with which TFLM's own interpreter (the ``tflite-micro`` Python
  package, the same C++ allocator as on the board) allocates and runs the model, found by
  bisection to :data:`ARENA_STEP` bytes.

Conversion uses ``litert-torch`` (PT2E static int8 quantisation: per-channel weights,
int8 activations, then the LiteRT converter). Two rewrites make a BERT run in TFLM, whose
op resolver has no ``GELU``: the activation becomes ``x * sigmoid(1.5958 (x + 0.0447 x^3))``,
which equals the tanh approximation of GELU exactly (``0.5 (1 + tanh z) = sigmoid(2 z)``)
and lowers to LOGISTIC/MUL/ADD, which TFLM has; the embedding tables are stored as int8
rows with a per-row scale (PT2E leaves lookups in float, see :func:`_int8_embeddings`);
and the padding mask enters as an additive float mask (see
:mod:`paretoedge.exporters._executorch`). The agreement check of the
export measures what the tanh approximation costs against the erf GELU of the candidate.

``litert-torch`` 0.10 cannot be installed beside paretoedge's TVM: it requires
``litert-converter`` 0.5, which pins ``xdsl==0.28.0``, which pins
``typing-extensions<4.13``, while ``apache-tvm-ffi`` needs ``typing-extensions>=4.13``.
So :func:`export_tflite` runs where ``litert-torch`` is installed (a separate environment
with torch 2.13.0; paretoedge's compression and models import there without TVM), while
:func:`tflm_memory` and :func:`tflm_runner` need only ``paretoedge[tflm]``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, MissingExtraError, ParetoEdgeError
from paretoedge.exporters._extras import require

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from paretoedge.exporters._agreement import Runner

_log = logging.getLogger(__name__)

#: arena sizes are bisected to this many bytes (TFLM aligns its buffers to 16)
ARENA_STEP = 16
_GELU_TANH_2C = 1.5957691216057308  # 2 * sqrt(2 / pi)


class ConverterUnavailableError(MissingExtraError):
    """``litert-torch`` is missing; unlike the runtimes it has no extra (module doc)."""

    def __init__(self) -> None:
        ParetoEdgeError.__init__(
            self,
            "litert_torch is not installed: it cannot share an environment with apache-tvm "
            "(xdsl 0.28 pins typing-extensions<4.13); convert in a separate environment with "
            "pip install litert-torch==0.10.0 torch==2.13.0",
        )


@dataclass(frozen=True)
class TflmMemory:
    """Measured memory of a flatbuffer in TFLM.

    Attributes:
        flash_bytes: Size of the flatbuffer (what is stored in flash besides the code).
        arena_bytes: Smallest tensor arena with which TFLM allocates and runs the model.
    """

    flash_bytes: int
    arena_bytes: int

    def to_dict(self) -> dict[str, int]:
        return {"flash_bytes": self.flash_bytes, "arena_bytes": self.arena_bytes}


def _tflm_runtime() -> Any:
    require("tflite_micro")
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def _interpreter(data: bytes, arena: int) -> Any | None:
    """A TFLM interpreter that ran once with an ``arena``-byte arena, or None if too small."""
    import numpy as np

    runtime = _tflm_runtime()
    try:
        interp = runtime.Interpreter.from_bytes(data, arena_size=arena)
    except RuntimeError:
        return None
    # zero inputs (the arena is not cleared: token ids would be garbage), then one run so
    # that every kernel's Prepare and Eval have asked for their buffers
    inputs = runtime.convert_bytearray_to_object(bytearray(data)).subgraphs[0].inputs
    for i in range(len(inputs)):
        d = interp.get_input_details(i)
        interp.set_input(np.zeros(tuple(d["shape"]), dtype=d["dtype"]), i)
    try:
        interp.invoke()
    except RuntimeError:
        return None
    return interp


def tflm_memory(path: str | Path, *, max_arena: int = 64 * 2**20) -> TflmMemory:
    """Measure ``path``'s flash size and the smallest working arena (module doc).

    Raises:
        MissingExtraError: ``tflite-micro`` is not installed.
        ConfigError: The model does not run in TFLM even with ``max_arena`` bytes (an
            operator TFLM lacks, or a model larger than that).
    """
    data = Path(path).read_bytes()
    try:
        runs = _interpreter(data, max_arena) is not None
    except (TypeError, ValueError, AttributeError) as exc:  # what its parser raises on junk
        raise ConfigError("tflite.model", str(path), "a TFLite flatbuffer") from exc
    if not runs:
        raise ConfigError(
            "tflite.model", str(path), f"a flatbuffer TFLM runs within {max_arena} bytes"
        )
    lo, hi = 0, max_arena  # lo fails (or is 0), hi works
    while hi - lo > ARENA_STEP:
        mid = (lo + hi) // 2
        if _interpreter(data, mid) is None:
            lo = mid
        else:
            hi = mid
    return TflmMemory(flash_bytes=len(data), arena_bytes=hi)


def tflm_runner(path: str | Path, *, arena_bytes: int | None = None) -> Runner:
    """The flatbuffer in TFLM's interpreter as a :data:`~paretoedge.exporters.Runner`.

    Inputs are cast to the model's input types; an int8 output is dequantised with its
    scale and zero point, so the runner returns float logits like the other runtimes.
    """
    import numpy as np

    from paretoedge.compression._export import INPUT_NAMES

    data = Path(path).read_bytes()
    arena = arena_bytes if arena_bytes is not None else tflm_memory(path).arena_bytes
    interp = _interpreter(data, arena)
    if interp is None:
        raise ConfigError("tflite.arena_bytes", arena, "an arena large enough for the model")
    in_types = [interp.get_input_details(i)["dtype"] for i in range(len(INPUT_NAMES))]
    out = interp.get_output_details(0)
    qp = out["quantization_parameters"]
    scale = float(qp["scales"][0]) if len(qp["scales"]) else None
    zero = int(qp["zero_points"][0]) if len(qp["zero_points"]) else 0

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        for i, (name, dtype) in enumerate(zip(INPUT_NAMES, in_types, strict=True)):
            interp.set_input(np.asarray(feed[name]).astype(dtype), i)
        interp.invoke()
        y = np.asarray(interp.get_output(0))
        return (y.astype(np.float32) - zero) * scale if scale is not None else y

    return run


def strip_names(path: str | Path) -> Path:
    """Drop the tensor names from a flatbuffer in place, keeping TFLM's buffer alignment.

    The LiteRT converter names every tensor after its PyTorch module stack (hundreds of
    bytes each: ~80 KB of a 0.5 MB tiny-bert flatbuffer), which TFLM never reads. The model
    is re-packed without them through the schema's object API, then re-aligned by TFLM's
    own ``tflite_flatbuffer_align`` (the C++ packer honours the schema's 16-byte
    ``force_align`` on buffers, which Python's builder does not). Signature names stay.

    Raises:
        MissingExtraError: ``tflite-micro`` is not installed.
    """
    import tempfile

    import flatbuffers

    runtime = _tflm_runtime()
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    path = Path(path)
    model = runtime.convert_bytearray_to_object(bytearray(path.read_bytes()))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = None
    builder = flatbuffers.Builder(path.stat().st_size)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory() as tmp:
        packed = Path(tmp) / "unaligned.tflite"
        packed.write_bytes(bytes(builder.Output()))
        tflite_flatbuffer_align_wrapper.align_tflite_model(str(packed), str(path))
    return path


def _gelu_as_sigmoid(model: nn.Module) -> None:
    from torch import nn

    class _SigmoidGelu(nn.Module):
        """tanh-approximate GELU written with a sigmoid (TFLM has LOGISTIC, not GELU)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            import torch

            return x * torch.sigmoid(_GELU_TANH_2C * (x + 0.044715 * x * x * x))

    for module in model.modules():
        if hasattr(module, "intermediate_act_fn"):
            module.intermediate_act_fn = _SigmoidGelu()


def _int8_embeddings(model: nn.Module) -> None:
    """Store every embedding table as int8 rows with one float scale per row.

    PT2E quantises the matmuls, not the lookups: a float word table (30522 x r) would fill
    the flash the hardware model counts in int8. The lookup becomes GATHER on the int8
    table and on the scales, a cast and a multiply, all TFLM kernels.
    """
    import torch
    from torch import nn

    class _Int8Embedding(nn.Module):
        table: torch.Tensor
        scale: torch.Tensor

        def __init__(self, table: torch.Tensor) -> None:
            super().__init__()
            scale = table.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            q = torch.round(table / scale[:, None]).clamp(-127, 127).to(torch.int8)
            self.register_buffer("table", q)
            self.register_buffer("scale", scale[:, None].contiguous())

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            rows = nn.functional.embedding(ids, self.table).to(torch.float32)
            return rows * nn.functional.embedding(ids, self.scale)

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Embedding):
                setattr(parent, name, _Int8Embedding(child.weight.detach()))


def export_tflite(
    model: nn.Module,
    path: str | Path,
    *,
    seq_len: int,
    calibration: Sequence[dict[str, torch.Tensor]],
) -> Path:
    """Write ``model`` as an int8 LiteRT flatbuffer for TFLM (see module doc).

    Inputs are int32 ``[1, seq_len]`` (TFLM has no int64 gather indices), output the int8
    logits with their scale and zero point. Tensor names are stripped (:func:`strip_names`).

    Raises:
        MissingExtraError: ``litert-torch`` is not installed.
        ConfigError: Bad ``seq_len`` or no calibration batches.
    """
    try:
        import litert_torch
        from litert_torch.quantize.pt2e_quantizer import (
            PT2EQuantizer,
            get_symmetric_quantization_config,
        )
        from litert_torch.quantize.quant_config import QuantConfig
    except ImportError as exc:
        raise ConverterUnavailableError() from exc
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from paretoedge.compression._export import INPUT_NAMES, _quiet, example_inputs
    from paretoedge.compression._modules import bake
    from paretoedge.compression._quant import set_act_quant_enabled
    from paretoedge.exporters._executorch import _calibration_args, _wrapper

    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise ConfigError("export.seq_len", seq_len, "an integer >= 1")
    if not calibration:
        raise ConfigError("export.calibration", None, "tokenised batches for the int8 model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = bake(copy.deepcopy(model)).eval()
    set_act_quant_enabled(work, False)
    _gelu_as_sigmoid(work)
    _int8_embeddings(work)
    inputs = example_inputs(work, batch=1, seq_len=seq_len)
    args = tuple(inputs[n].to(torch.int32) for n in INPUT_NAMES)
    quantizer = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    with _quiet(), torch.no_grad():
        graph = torch.export.export(_wrapper(work), args).module()
        prepared = prepare_pt2e(graph, quantizer)
        for cal in _calibration_args(calibration, seq_len):
            prepared(*(a.to(torch.int32) for a in cal))
        converted = convert_pt2e(prepared, fold_quantize=False)
        edge = litert_torch.convert(
            converted, args, quant_config=QuantConfig(pt2e_quantizer=quantizer)
        )
    edge.export(str(path))
    strip_names(path)
    _log.info("wrote %s (%d bytes, int8)", path, path.stat().st_size)
    return path
