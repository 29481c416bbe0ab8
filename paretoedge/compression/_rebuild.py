"""Rebuilding the modules of tensor decomposition, efficient attention and early exit
when a saved model is loaded (:func:`~paretoedge.compression.load_compressed`).

``paretoedge_structure.json`` records Linear shapes, heads and quantisation; the modules
these three transforms add are rebuilt from the saved spec instead: the decomposition is
re-run on the freshly built weights (the factor shapes depend only on the tensor shapes and
the rank, so the same modules appear), the attention swap has no weights, and the exit
heads are attached untrained. The saved weights are loaded over all of them afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paretoedge.compression._config import CompressionSpec

_EXIT_PREFIX = "paretoedge_exits."


def needs_rebuild(spec: CompressionSpec) -> bool:
    attention = spec.attention is not None and spec.attention.kind != "softmax"
    return spec.tensor is not None or attention or spec.exit is not None


def is_rebuilt(module_name: str) -> bool:
    """Whether a structure entry belongs to a module :func:`rebuild_structure` creates."""
    return module_name.startswith(_EXIT_PREFIX)


def rebuild_structure(model: Any, spec: CompressionSpec, state: Mapping[str, Any]) -> None:
    """Recreate the three transforms' modules on ``model`` (weights are loaded after).

    ``state`` is the saved state dict: it gives the Q/K/V shapes a decomposed layer had
    (head pruning may have shrunk them, and the structure file records only Linears).
    """
    from dataclasses import replace

    if spec.tensor is not None:
        from torch import nn

        from paretoedge.compression import _arch
        from paretoedge.compression._tensor import tensor_decompose

        for block in _arch.blocks(model):
            up = state.get(f"{block.query}.up.weight")
            down = state.get(f"{block.query}.down.weight")
            if up is None or down is None:
                continue
            for name in (block.query, block.key, block.value):
                model.set_submodule(name, nn.Linear(int(down.shape[1]), int(up.shape[0])))

        tensor_decompose(model, spec.tensor)
    if spec.attention is not None and spec.attention.kind != "softmax":
        from paretoedge.compression._attention import replace_attention

        replace_attention(model, spec.attention)
    if spec.exit is not None:
        from paretoedge.compression._exit import attach_exits

        attach_exits(model, replace(spec.exit, steps=0))
