"""ExecuTorch programs (``.pte``) for ARM CPUs and phones, XNNPACK-delegated.

ExecuTorch is what PyTorch ships for on-device inference; XNNPACK is its CPU backend for
ARM (NEON) and x86. A candidate is written as a static-shape program with the same three
int64 ``[1, seq_len]`` inputs as the ONNX export and one ``logits`` output:

* float: ``torch.export`` → ``to_edge_transform_and_lower`` with the XNNPACK partitioner
  → ``to_executorch``; activations in float even where the candidate fake-quantises them
  (``aten._fake_quantize_*`` is not core ATen, so ExecuTorch cannot lower it);
* int8: the PT2E flow first (``prepare_pt2e`` with the XNNPACK quantizer, calibration on
  real training batches, ``convert_pt2e``), per-channel symmetric int8 weights and int8
  activations on every ``nn.Linear``, the layers XNNPACK runs as int8 GEMMs.

The model is wrapped so that the padding mask enters as a 4-D additive float mask: the
mask that recent ``transformers`` builds from a 2-D mask indexes with an ``arange``, and
the PT2E preparation of that graph fails (``tensors used as indices must be long``); the
additive mask is what BERT computes from the 2-D one, so the logits are the same.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError
from paretoedge.exporters._extras import require

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from paretoedge.exporters._agreement import Runner

_log = logging.getLogger(__name__)


def _wrapper(model: nn.Module) -> nn.Module:
    import torch
    from torch import nn

    class _AdditiveMaskLogits(nn.Module):
        """(input_ids, attention_mask, token_type_ids) -> logits, mask made additive here."""

        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.use_types = bool(getattr(inner.config, "type_vocab_size", 0))

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            keep = attention_mask[:, None, None, :].to(torch.float32)
            additive = (1.0 - keep) * torch.finfo(torch.float32).min
            kwargs = {"input_ids": input_ids, "attention_mask": additive}
            if self.use_types:
                kwargs["token_type_ids"] = token_type_ids
            return self.inner(**kwargs).logits

    return _AdditiveMaskLogits(model).eval()


def _calibration_args(
    calibration: Sequence[dict[str, torch.Tensor]], seq_len: int
) -> list[tuple[torch.Tensor, ...]]:
    import torch

    from paretoedge.compression._export import INPUT_NAMES, fit_inputs

    args = []
    for batch in calibration:
        for feed in fit_inputs(batch, batch_size=1, seq_len=seq_len):
            args.append(tuple(torch.from_numpy(feed[n]) for n in INPUT_NAMES))
    return args


def export_executorch(
    model: nn.Module,
    path: str | Path,
    *,
    seq_len: int,
    int8: bool = False,
    calibration: Sequence[dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write ``model`` as an XNNPACK-delegated ExecuTorch program (see module doc).

    The model is copied and its masks/fake quantisers baked; the original is untouched.

    Args:
        seq_len: Static sequence length of the inputs.
        int8: Write the int8 program (needs ``calibration``).
        calibration: Tokenised batches (``make_batches`` output) for the int8 observers.

    Raises:
        MissingExtraError: ``executorch`` is not installed.
        ConfigError: Bad ``seq_len``, or ``int8`` without calibration batches.
    """
    require("executorch")
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from paretoedge.compression._export import INPUT_NAMES, _quiet, example_inputs
    from paretoedge.compression._modules import bake
    from paretoedge.compression._quant import set_act_quant_enabled

    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise ConfigError("export.seq_len", seq_len, "an integer >= 1")
    if int8 and not calibration:
        raise ConfigError("export.calibration", None, "tokenised batches for the int8 program")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = bake(copy.deepcopy(model)).eval()
    # activations compute in float (int8: the program's own observers quantise them); the
    # candidate's fake activation quantisers have no core-ATen form that ExecuTorch lowers.
    # The agreement check measures what this changes.
    set_act_quant_enabled(work, False)
    inputs = example_inputs(work, batch=1, seq_len=seq_len)
    args = tuple(inputs[n] for n in INPUT_NAMES)
    wrapper = _wrapper(work)
    with _quiet(), torch.no_grad():
        if int8:
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            quantizer = XNNPACKQuantizer().set_module_type(
                torch.nn.Linear, get_symmetric_quantization_config(is_per_channel=True)
            )
            graph = torch.export.export(wrapper, args).module()
            prepared = prepare_pt2e(graph, quantizer)
            for cal in _calibration_args(calibration or (), seq_len):
                prepared(*cal)
            wrapper = convert_pt2e(prepared)
        program = torch.export.export(wrapper, args)
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        buffer = lowered.to_executorch().buffer
    path.write_bytes(buffer)
    _log.info("wrote %s (%d bytes, %s)", path, len(buffer), "int8" if int8 else "fp32")
    return path


def executorch_runner(path: str | Path) -> Runner:
    """Load a ``.pte`` in ExecuTorch's Python runtime as a :data:`Runner`.

    Raises:
        MissingExtraError: ``executorch`` is not installed.
    """
    require("executorch")
    import numpy as np
    import torch
    from executorch.runtime import Runtime

    from paretoedge.compression._export import INPUT_NAMES

    method = Runtime.get().load_program(Path(path)).load_method("forward")
    if method is None:
        raise ConfigError("executorch.program", str(path), "a program with a forward method")

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        out: Any = method.execute([torch.from_numpy(feed[n]) for n in INPUT_NAMES])
        return np.asarray(out[0].numpy())

    return run
