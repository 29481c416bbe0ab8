"""ONNX export of an early-exit model: one file per exit prefix.

A cascade runtime loads ``<stem>.exit<L>.onnx`` for every exit layer count L (and the final
``<stem>.exit<depth>.onnx``, identical in function to the main export plus the exit heads'
outputs), runs the first file, and moves on to the next prefix only when the exit's top
softmax probability is below the threshold stored in the metadata
(``paretoedge.exit.threshold``). Each file is a complete static-shape graph from the token
ids, so the hardware model can cost each prefix as the device would run it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paretoedge.compression import _arch
from paretoedge.compression._exit import ExitPrefix, exit_layers
from paretoedge.compression._export import (
    INPUT_NAMES,
    OPSET,
    _quiet,
    _rename_weights,
    _write_metadata,
    example_inputs,
)
from paretoedge.compression._modules import bake


class _Graph(nn.Module):
    def __init__(self, prefix: ExitPrefix) -> None:
        super().__init__()
        self.model = prefix

    def forward(self, *args: torch.Tensor) -> Any:
        return self.model(*args)


def prefix_path(onnx_path: Path, layers: int) -> Path:
    """Where the prefix graph ending at ``layers`` layers is written beside ``onnx_path``."""
    return onnx_path.with_name(f"{onnx_path.stem}.exit{layers}.onnx")


def export_exits(
    model: nn.Module, onnx_path: str | Path, *, seq_len: int = 64, batch: int = 1
) -> dict[int, Path]:
    """Write one ONNX per exit prefix beside ``onnx_path``; returns {layer count: path}.

    Raises:
        ConfigError: ``model`` has no exit heads (see :func:`attach_exits`).
    """
    import onnx

    from paretoedge.errors import ConfigError

    layers = exit_layers(model)
    if not layers:
        raise ConfigError("exit.layers", None, "a model with exit heads (exit.layers set)")
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    work = bake(copy.deepcopy(model)).eval()
    depth = len(_arch.blocks(work))
    spec = getattr(model, "paretoedge_spec", None)
    spec_json = spec.to_json() if spec is not None else json.dumps(None)
    threshold = str(getattr(model, "paretoedge_exit_threshold", ""))
    inputs = example_inputs(work, batch=batch, seq_len=seq_len)
    out: dict[int, Path] = {}
    for n in (*layers, depth):
        prefix = ExitPrefix(work, n).eval()
        path = prefix_path(onnx_path, n)
        names = ["logits", *(f"exit_logits_{k}" for k in prefix.layers if k != n)]
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                _Graph(prefix),
                tuple(inputs[k] for k in INPUT_NAMES),
                str(path),
                input_names=list(INPUT_NAMES),
                output_names=names,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        proto = onnx.load(str(path))
        modules = [k for k, m in prefix.named_modules() if isinstance(m, nn.Linear | nn.Embedding)]
        _rename_weights(proto.graph, modules)
        _write_metadata(
            proto, prefix, spec_json=spec_json, batch=batch, seq_len=seq_len, int8=False
        )
        proto.metadata_props.append(
            onnx.StringStringEntryProto(key="paretoedge.exit.layers", value=str(n))
        )
        proto.metadata_props.append(
            onnx.StringStringEntryProto(key="paretoedge.exit.threshold", value=threshold)
        )
        onnx.save(proto, str(path))
        out[n] = path
    return out
