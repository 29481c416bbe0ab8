"""Compression transforms and their composition.

Each transform has a frozen, validated config (:class:`PruneConfig`, :class:`HeadsConfig`,
:class:`FFNConfig`, :class:`LowRankConfig`, :class:`QuantConfig`, :class:`DistillConfig`,
:class:`RecoveryConfig`, :class:`TensorConfig`, :class:`AttentionConfig`,
:class:`ExitConfig`) and is a plug-in of :data:`TRANSFORMS`: it registers its config
class, its handlers and their places in the canonical order with
:func:`register_transform` (see :mod:`paretoedge.compression._transform`).
:class:`CompressionSpec` bundles the configs and :func:`compress` walks the registered
steps in order. :func:`distill` is the distillation loop behind ``distill`` and
``recovery``.
:func:`model_stats` measures parameters, sparsity and packed bytes; :func:`export_onnx`
writes static-shape ONNX (float, or int8 QDQ) with the ``paretoedge.*`` metadata the
hardware model reads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from paretoedge.compression._config import (
    ALLOWED_BITS,
    CompressionSpec,
    FFNConfig,
    HeadsConfig,
    LowRankConfig,
    PruneConfig,
    QuantConfig,
    RecoveryConfig,
    flat_key_types,
    identity_flat,
)
from paretoedge.compression._distill import (
    DistillConfig,
    DistillRun,
    apply_distill,
    distill,
    distill_loss,
    make_student,
)
from paretoedge.compression._extra_config import (
    LAYER_LIST_KEYS,
    AttentionConfig,
    ExitConfig,
    TensorConfig,
    layer_list_text,
)
from paretoedge.compression._transform import (
    TRANSFORMS,
    Step,
    Transform,
    register_transform,
)

if TYPE_CHECKING:
    from paretoedge.compression._attention import EfficientSelfAttention, replace_attention
    from paretoedge.compression._compose import (
        STEPS,
        CompressionPrefix,
        CompressionResult,
        StagedCompression,
        compress,
        load_compressed,
        save_compressed,
    )
    from paretoedge.compression._context import CompressContext
    from paretoedge.compression._exit import (
        ExitOutcome,
        attach_exits,
        exit_inference,
        train_exits,
    )
    from paretoedge.compression._exit_export import export_exits
    from paretoedge.compression._export import export_onnx, weight_facts
    from paretoedge.compression._lowrank import low_rank
    from paretoedge.compression._modules import LowRankEmbedding, LowRankLinear, bake
    from paretoedge.compression._prune import magnitude_prune, prune_ffn, prune_heads
    from paretoedge.compression._quant import calibrate_activations, quantize_weights
    from paretoedge.compression._stats import LayerInfo, ModelStats, model_stats
    from paretoedge.compression._tensor import (
        FactoredEmbedding,
        StackedProjection,
        tensor_decompose,
    )

# Names whose modules import torch are loaded on first use, so reading a spec (the CLI,
# the search controller, the HTTP API) does not pay for importing torch.
_LAZY = {
    "STEPS": "_compose",
    "CompressionResult": "_compose",
    "CompressContext": "_context",
    "compress": "_compose",
    "StagedCompression": "_compose",
    "CompressionPrefix": "_compose",
    "load_compressed": "_compose",
    "save_compressed": "_compose",
    "export_onnx": "_export",
    "weight_facts": "_export",
    "low_rank": "_lowrank",
    "LowRankEmbedding": "_modules",
    "LowRankLinear": "_modules",
    "bake": "_modules",
    "magnitude_prune": "_prune",
    "prune_ffn": "_prune",
    "prune_heads": "_prune",
    "calibrate_activations": "_quant",
    "quantize_weights": "_quant",
    "LayerInfo": "_stats",
    "ModelStats": "_stats",
    "model_stats": "_stats",
    "EfficientSelfAttention": "_attention",
    "replace_attention": "_attention",
    "ExitOutcome": "_exit",
    "attach_exits": "_exit",
    "exit_inference": "_exit",
    "train_exits": "_exit",
    "export_exits": "_exit_export",
    "FactoredEmbedding": "_tensor",
    "StackedProjection": "_tensor",
    "tensor_decompose": "_tensor",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"paretoedge.compression.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALLOWED_BITS",
    "LAYER_LIST_KEYS",
    "layer_list_text",
    "AttentionConfig",
    "EfficientSelfAttention",
    "ExitConfig",
    "ExitOutcome",
    "FactoredEmbedding",
    "StackedProjection",
    "TensorConfig",
    "attach_exits",
    "exit_inference",
    "export_exits",
    "replace_attention",
    "tensor_decompose",
    "train_exits",
    "STEPS",
    "TRANSFORMS",
    "CompressContext",
    "CompressionResult",
    "CompressionSpec",
    "DistillConfig",
    "DistillRun",
    "FFNConfig",
    "HeadsConfig",
    "LayerInfo",
    "LowRankConfig",
    "LowRankEmbedding",
    "LowRankLinear",
    "ModelStats",
    "PruneConfig",
    "QuantConfig",
    "RecoveryConfig",
    "StagedCompression",
    "CompressionPrefix",
    "Step",
    "Transform",
    "apply_distill",
    "bake",
    "calibrate_activations",
    "compress",
    "distill",
    "distill_loss",
    "export_onnx",
    "flat_key_types",
    "identity_flat",
    "load_compressed",
    "low_rank",
    "magnitude_prune",
    "make_student",
    "model_stats",
    "prune_ffn",
    "prune_heads",
    "quantize_weights",
    "register_transform",
    "save_compressed",
    "weight_facts",
]
