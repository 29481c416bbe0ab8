"""Hashed weights (HashedNets, Chen et al. 2015): the ``hash`` transform.

A target Linear's ``out x in`` *virtual* weight matrix is read from a much smaller vector of
``k = ceil(ratio * out * in)`` *real* parameters: ``W[i, j] = s(i, j) * real[h(i, j)]`` with
``h`` a seeded integer hash into ``[0, k)`` and ``s`` a seeded sign hash in {-1, +1} (the
sign makes collisions unbiased). Nothing but the real vector, the bias and the seed has to
be stored: the hash is recomputed from the seed. The real vector starts as the least-squares
projection of the pre-trained weight (the mean of ``s * W`` over each bucket) and is trained
through the hash by the ``recovery`` distillation (gradients of colliding weights add up).

What a device sees: the ONNX export *materialises* the virtual weights (an ordinary MatMul
with a dense initializer), because no runtime computes a hashed matmul natively; so latency
and runtime memory are those of the unhashed layer, and only the stored size shrinks. The
model card of an export says so.

Hashed layers hold a float32 real vector: unstructured pruning and quantisation (which run
after this step) leave them alone and apply to the other layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from paretoedge.compression._transform import Step, register_transform
from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from paretoedge.compression._context import CompressContext

HASH_TARGETS = ("attention", "ffn")
#: Bytes counted for the seed a hashed layer is rebuilt from.
SEED_BYTES = 8


@dataclass(frozen=True)
class HashConfig:
    """Which encoder Linears get hashed weights and how many real parameters they keep.

    Attributes:
        ratio: Real parameters per virtual weight, in (0, 1]; 1 leaves the layers alone.
        targets: Layer groups whose Linears are hashed, a subset of attention, ffn.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"ratio": 1.0}

    ratio: float = 0.25
    targets: tuple[str, ...] = HASH_TARGETS

    def __post_init__(self) -> None:
        ok = (
            isinstance(self.ratio, int | float)
            and not isinstance(self.ratio, bool)
            and math.isfinite(self.ratio)
            and 0 < self.ratio <= 1
        )
        if not ok:
            raise ConfigError("hash.ratio", self.ratio, "a number in (0, 1]")
        targets = self.targets
        if isinstance(targets, str):
            targets = tuple(t.strip() for t in targets.split(",") if t.strip())
        targets = tuple(targets)
        if not targets or any(t not in HASH_TARGETS for t in targets):
            raise ConfigError(
                "hash.targets",
                ",".join(map(str, targets)),
                "a non-empty subset of " + ", ".join(HASH_TARGETS),
            )
        object.__setattr__(self, "targets", tuple(t for t in HASH_TARGETS if t in targets))


def hash_weights(model: nn.Module, config: HashConfig, *, seed: int = 0) -> dict[str, int]:
    """Replace the target Linears by hashed ones; returns module name -> real size."""
    from torch import nn

    from paretoedge.compression import _arch
    from paretoedge.compression._modules import HashedLinear

    done: dict[str, int] = {}
    targets = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and _arch.group_of(model, name) in config.targets
    ]
    for index, (name, linear) in enumerate(targets):
        virtual = linear.out_features * linear.in_features
        size = max(1, math.ceil(config.ratio * virtual))
        new = HashedLinear(
            linear.in_features,
            linear.out_features,
            size,
            seed * 1_000_003 + index,
            bias=linear.bias is not None,
        )
        new.project(linear.weight.detach())
        if linear.bias is not None and new.bias is not None:
            new.bias.data.copy_(linear.bias.detach())
        model.set_submodule(name, new.train(linear.training))
        done[name] = size
    return done


def materialize(model: nn.Module) -> nn.Module:
    """Replace every hashed layer by an ordinary Linear holding its virtual weight (in place);
    what the ONNX export runs."""
    import torch
    from torch import nn

    from paretoedge.compression._modules import HashedLinear

    for name, module in list(model.named_modules()):
        if not isinstance(module, HashedLinear):
            continue
        linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(module.weight)
            if module.bias is not None:
                linear.bias.copy_(module.bias)
        model.set_submodule(name, linear.train(module.training))
    return model


def run_hash(ctx: CompressContext, config: HashConfig) -> bool:
    """The ``hash`` step (ratio 1 changes nothing)."""
    if config.ratio >= 1:
        return False
    return bool(hash_weights(ctx.model, config, seed=ctx.seed))


register_transform(
    "hash",
    HashConfig,
    Step("hash", order=450, handler="paretoedge.compression._hash:run_hash"),
    note=(
        "Hashed weights (HashedNets): the stored size counts the real parameter vectors and "
        "their seeds, but the ONNX file holds the materialised weights (no runtime has a "
        "hashed matmul), so latency and runtime memory are those of the unhashed layers."
    ),
)
