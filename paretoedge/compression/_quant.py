"""Weight quantisation (uniform per-channel or k-means clustering) and int8 activations.

Weights are quantised by parametrisations (:class:`UniformFakeQuant`,
:class:`ClusterFakeQuant`); once baked, a layer's float weight holds exactly the values
its integer codes and scales (or codebook) represent, so accuracy is measured on what
would be stored, and :func:`~paretoedge.compression.model_stats` counts the packed bytes.
Every quantised layer carries ``paretoedge_quant = {"bits", "scheme", "act_bits"}``.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from paretoedge.compression import _arch
from paretoedge.compression._config import QuantConfig
from paretoedge.compression._modules import (
    ClusterFakeQuant,
    UniformFakeQuant,
    attach_act_quantizer,
    kmeans_1d,
)

if TYPE_CHECKING:
    from paretoedge.compression._context import CompressContext

log = logging.getLogger(__name__)

#: Activation calibration uses the first CALIBRATION_BATCHES x CALIBRATION_BATCH_SIZE
#: training examples (unless the caller passes its own batches).
CALIBRATION_BATCHES = 4
CALIBRATION_BATCH_SIZE = 16


def quant_targets(model: nn.Module) -> list[tuple[str, Any]]:
    """Every Linear and the word-embedding table (plain or factored)."""
    word = _arch.family(model).word_embeddings
    out: list[tuple[str, Any]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or (
            isinstance(module, nn.Embedding) and name in (word, word + ".embed")
        ):
            out.append((name, module))
    return out


def bits_for(model: nn.Module, name: str, config: QuantConfig) -> int:
    """The bit-width of module ``name``: the default, then the overrides in order."""
    bits = config.bits
    group = _arch.group_of(model, name)
    index = _arch.block_index(model, name)
    for selector, b in config.layer_bits:
        if (
            selector == group
            or (selector.startswith("layer.") and selector == f"layer.{index}")
            or fnmatch.fnmatchcase(name, selector)
        ):
            bits = b
    return bits


def quantize_weights(model: nn.Module, config: QuantConfig, *, seed: int = 0) -> dict[str, int]:
    """Insert the weight fake quantisers; returns module name -> bits.

    Uniform: symmetric per output channel (per row of an embedding). Cluster: a 1-D k-means
    codebook of 2^bits values per layer (2^bits - 1 plus an exact zero when the layer is
    pruned). 16 bits is float16 in both schemes; 32 bits leaves the layer alone.
    """
    chosen: dict[str, int] = {}
    for name, module in quant_targets(model):
        bits = bits_for(model, name, config)
        chosen[name] = bits
        scheme = config.scheme if bits <= 8 else "uniform"
        act_bits = (
            config.act_bits
            if bits == 8 and scheme == "uniform" and isinstance(module, nn.Linear)
            else None
        )
        module.paretoedge_quant = {"bits": bits, "scheme": scheme, "act_bits": act_bits}
        if bits == 32:
            continue
        if scheme == "cluster":
            w = module.weight.detach()
            has_zeros = bool((w == 0).any())
            k = 2**bits - (1 if has_zeros else 0)
            values = w[w != 0] if has_zeros else w
            codebook = kmeans_1d(values, k, seed=seed)
            parametrize.register_parametrization(
                module, "weight", ClusterFakeQuant(codebook, keep_zero=has_zeros)
            )
        else:
            parametrize.register_parametrization(module, "weight", UniformFakeQuant(bits))
    return chosen


def act_quant_layers(model: nn.Module) -> list[tuple[str, Any]]:
    return [
        (name, m)
        for name, m in model.named_modules()
        if getattr(m, "paretoedge_quant", {}).get("act_bits") == 8
    ]


@torch.no_grad()
def calibrate_activations(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]
) -> list[str]:
    """Attach int8 input quantisers to the layers marked ``act_bits=8`` and calibrate them
    (running min/max over ``batches``); returns the names of the calibrated layers."""
    layers = act_quant_layers(model)
    quantizers = [attach_act_quantizer(m) for _, m in layers]
    for q in quantizers:
        q.observing = True
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            model(**inputs)
    finally:
        model.train(was_training)
    for q in quantizers:
        if not torch.isfinite(q.lo):
            q.lo.fill_(0.0)
            q.hi.fill_(0.0)
        q.freeze()
    return [name for name, _ in layers]


def set_act_quant_enabled(model: nn.Module, enabled: bool) -> list[bool]:
    """Switch every activation quantiser on/off; returns the previous states."""
    previous: list[bool] = []
    modules: list[Any] = list(model.modules())
    for m in modules:
        if hasattr(m, "act_quant"):
            previous.append(m.act_quant.enabled)
            m.act_quant.enabled = enabled
    return previous


def has_act_quant(config: QuantConfig) -> bool:
    """Whether some layer gets int8 activations (8-bit uniform layers with act_bits=8)."""
    bits = {config.bits, *(b for _, b in config.layer_bits)}
    return config.act_bits == 8 and config.scheme == "uniform" and 8 in bits


def check_quant(ctx: CompressContext, config: QuantConfig) -> None:
    """int8 activations need calibration batches (given, or from the task)."""
    if has_act_quant(config) and ctx.calibration is None:
        ctx.need_data("quant.act_bits", 8)


def run_quant_qat(ctx: CompressContext, config: QuantConfig) -> bool:
    """The ``quant(qat)`` step: fake quantisers the recovery fine-tune trains through."""
    if not config.qat:
        return False
    quantize_weights(ctx.model, config, seed=ctx.seed)
    return True


def run_quant_ptq(ctx: CompressContext, config: QuantConfig) -> bool:
    """The ``quant(ptq)`` step: quantise the recovered weights."""
    if config.qat:
        return False
    quantize_weights(ctx.model, config, seed=ctx.seed)
    return True


def run_calibrate(ctx: CompressContext, config: QuantConfig) -> bool:
    """The ``calibrate`` step (after the bake): int8 activation scales from real batches."""
    if not has_act_quant(config):
        return False
    batches = ctx.calibration
    if batches is None:
        batches = ctx.batches(CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE)
    return bool(calibrate_activations(ctx.model, batches))
