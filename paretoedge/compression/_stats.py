"""Parameter counts, sparsity and stored bytes with real bit-packing accounting.

Stored bytes of a quantised weight matrix with n values at b bits:

- uniform b <= 8: ``ceil(n * b / 8)`` + one float32 scale per output row;
- cluster b <= 8: ``ceil(n * b / 8)`` + a float32 codebook of 2^b entries;
- 16 / 32 bits: 2 / 4 bytes per value;
- a matrix with zeros is stored sparse when that is smaller: a 1-bit-per-position
  occupancy bitmap plus the non-zero values at b bits (plus scales/codebook).

Everything else (biases, LayerNorm, position and token-type embeddings, unquantised
layers) counts 4 bytes per parameter; non-persistent buffers count nothing. A tensor shared
by several modules (cross-layer sharing) is counted once. A hashed layer (HashedNets) counts
its real parameter vector at 4 bytes per value plus its 8-byte seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from paretoedge.compression._hash import SEED_BYTES
from paretoedge.compression._modules import HashedLinear
from paretoedge.compression._prune import prune_targets
from paretoedge.compression._quant import quant_targets


@dataclass(frozen=True)
class LayerInfo:
    """What export metadata and the hardware model need to know about one weight matrix."""

    module: str
    bits: int
    scheme: str
    sparsity: float
    act_bits: int | None
    parameters: int
    stored_bytes: int


@dataclass(frozen=True)
class ModelStats:
    """Measured size of a model.

    Attributes:
        parameters: All parameters (masked ones included: they still exist).
        nonzero_parameters: Parameters that are not exactly zero.
        stored_bytes: Bytes to store the weights with bit packing and sparse encoding.
        sparsity: Fraction of zeros among the encoder's Linear weights (the pruning
            targets: attention and FFN projections).
        layer_bits: Module name -> weight bits of every Linear/word-embedding matrix.
    """

    parameters: int
    nonzero_parameters: int
    stored_bytes: int
    sparsity: float
    layer_bits: Mapping[str, int] = field(default_factory=dict)
    layers: tuple[LayerInfo, ...] = field(default=(), repr=False)

    @property
    def stored_mb(self) -> float:
        return self.stored_bytes / 1e6

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_bits"] = dict(self.layer_bits)
        d.pop("layers")
        return d


def matrix_bytes(weight: torch.Tensor, bits: int, scheme: str) -> int:
    """Bytes to store one weight matrix (see the module docstring)."""
    n = weight.numel()
    if bits >= 16:
        dense = n * bits // 8
        overhead = 0
    else:
        dense = math.ceil(n * bits / 8)
        overhead = (2**bits) * 4 if scheme == "cluster" else weight.shape[0] * 4
    nnz = int((weight != 0).sum())
    sparse = math.ceil(n / 8) + math.ceil(nnz * bits / 8)
    return min(dense, sparse) + overhead


def layer_infos(model: nn.Module) -> list[LayerInfo]:
    infos = []
    for name, module in quant_targets(model):
        w = module.weight.detach()
        q = getattr(module, "paretoedge_quant", None) or {
            "bits": 32,
            "scheme": "uniform",
            "act_bits": None,
        }
        zeros = int((w == 0).sum())
        infos.append(
            LayerInfo(
                module=name,
                bits=int(q["bits"]),
                scheme=str(q["scheme"]),
                sparsity=zeros / w.numel(),
                act_bits=q["act_bits"],
                parameters=w.numel(),
                stored_bytes=matrix_bytes(w, int(q["bits"]), str(q["scheme"])),
            )
        )
    return infos


def _weight_tensor(module: Any) -> Any:
    """The parameter that stores a module's weight (a parametrised weight's ``original``)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


@torch.no_grad()
def model_stats(model: nn.Module) -> ModelStats:
    """Count parameters, zeros and stored bytes of ``model`` as it is now."""
    infos = layer_infos(model)
    weight_ids = {id(_weight_tensor(module)) for _, module in quant_targets(model)}
    parameters = nonzero = other_bytes = 0
    for _, p in model.named_parameters():  # a tied parameter is listed once
        parameters += p.numel()
        if id(p) not in weight_ids:
            nonzero += int((p != 0).sum())
            other_bytes += p.numel() * 4
    # a hashed layer's parameters (real vector, bias) are counted above; add its seed
    other_bytes += SEED_BYTES * sum(isinstance(m, HashedLinear) for m in model.modules())
    stored: dict[int, int] = {}  # one entry per distinct (possibly shared) weight
    for (_, module), info in zip(quant_targets(model), infos, strict=True):
        key = id(_weight_tensor(module))
        if key not in stored:
            stored[key] = info.stored_bytes
            nonzero += int((module.weight != 0).sum())
    targets = prune_targets(model)
    total = sum(m.weight.numel() for _, m in targets)
    zeros = sum(int((m.weight == 0).sum()) for _, m in targets)
    return ModelStats(
        parameters=parameters,
        nonzero_parameters=nonzero,
        stored_bytes=other_bytes + sum(stored.values()),
        sparsity=zeros / total if total else 0.0,
        layer_bits={i.module: i.bits for i in infos},
        layers=tuple(infos),
    )
