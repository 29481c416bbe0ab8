"""Cross-layer parameter sharing (ALBERT-style): the ``share`` transform.

The encoder's blocks are split into ``groups`` runs of adjacent blocks (as even as possible,
earlier runs one block longer); every block of a run uses the same parameter tensors (all of
them: projections, biases, LayerNorms), initialised from the run's element-wise mean or its
first block and then trained by the ``recovery`` distillation (gradients of the tied
blocks add up, as in ALBERT).

What changes and what does not:

* stored bytes shrink (a tied tensor is stored once; :func:`~paretoedge.compression.model_stats`
  counts it once);
* the computation does not: every block still runs its matmuls, so latency is unchanged.
  The ONNX export keeps one initializer per tied tensor that every block's MatMul reads,
  so the hardware model costs every kernel (same latency) and counts the weight bytes
  once (smaller model).

Masks, quantisers and :func:`~paretoedge.compression.bake` keep the ties (a parametrised
tied weight has one ``original``), so sharing composes with pruning and quantisation.
The groups are recorded on the model (``paretoedge_share_groups``) and in the structure
file of :func:`~paretoedge.compression.save_compressed`, which re-ties them on load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from paretoedge.compression._transform import Step, register_transform
from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from paretoedge.compression._context import CompressContext

#: Model attribute holding the shared block groups (lists of block indices).
SHARE_ATTR = "paretoedge_share_groups"
SHARE_INIT = ("mean", "first")


@dataclass(frozen=True)
class ShareConfig:
    """Groups of adjacent encoder blocks that share one set of weights.

    Attributes:
        groups: Number of distinct weight sets, >= 1 (1: every block shares one set;
            the model's depth: no sharing). Checked against the depth when applied.
        init: The shared weights start as the element-wise ``"mean"`` of the group's
            blocks or as its ``"first"`` block.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"groups": 10**9}

    groups: int = 2
    init: Literal["mean", "first"] = "mean"

    def __post_init__(self) -> None:
        if not isinstance(self.groups, int) or isinstance(self.groups, bool) or self.groups < 1:
            raise ConfigError("share.groups", self.groups, "an integer >= 1")
        if self.init not in SHARE_INIT:
            raise ConfigError("share.init", self.init, SHARE_INIT)


def share_groups(depth: int, groups: int) -> list[list[int]]:
    """``depth`` block indices split into ``groups`` adjacent runs (earlier runs longer).

    Raises:
        ConfigError: ``groups`` exceeds ``depth``.
    """
    if not 1 <= groups <= depth:
        raise ConfigError("share.groups", groups, f"1..{depth} (the model has {depth} layers)")
    base, extra = divmod(depth, groups)
    out, start = [], 0
    for g in range(groups):
        size = base + (1 if g < extra else 0)
        out.append(list(range(start, start + size)))
        start += size
    return out


def _tensors(block: nn.Module) -> dict[str, Any]:
    """Parameter name -> the tensor holding it (a parametrised weight's ``original``)."""
    return dict(block.named_parameters(remove_duplicate=False))


def tie(model: Any, groups: list[list[int]], *, init: str = "first") -> None:
    """Make the blocks of every group use one set of parameters (in place).

    Raises:
        ConfigError: blocks of a group whose parameters differ in names or shapes (e.g.
            per-layer low-rank factors: share before factorising).
    """
    import torch
    from torch import nn

    from paretoedge.models import encoder_layers

    blocks = encoder_layers(model)
    for group in groups:
        if len(group) < 2:
            continue
        members = [_tensors(blocks[i]) for i in group]
        shapes = [{k: tuple(v.shape) for k, v in m.items()} for m in members]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ConfigError(
                "share.groups",
                len(groups),
                f"groups of layers with identical shapes (layers {group[0]}..{group[-1]} differ)",
            )
        for name in members[0]:
            with torch.no_grad():
                if init == "mean":
                    value = torch.stack([m[name].detach() for m in members]).mean(0)
                else:
                    value = members[0][name].detach().clone()
            shared = nn.Parameter(value, requires_grad=members[0][name].requires_grad)
            for i in group:
                owner_name, _, attr = name.rpartition(".")
                owner = blocks[i].get_submodule(owner_name) if owner_name else blocks[i]
                owner.register_parameter(attr, shared)
    setattr(model, SHARE_ATTR, [list(g) for g in groups])


def untie(model: Any) -> list[list[int]] | None:
    """Give every block its own copy of the shared tensors (in place; for file formats that
    refuse shared storage); returns the groups, which :func:`tie` restores."""
    from torch import nn

    from paretoedge.models import encoder_layers

    groups = getattr(model, SHARE_ATTR, None)
    if not groups:
        return None
    blocks = encoder_layers(model)
    for group in groups:
        for i in group[1:]:
            for name, tensor in _tensors(blocks[i]).items():
                owner_name, _, attr = name.rpartition(".")
                owner = blocks[i].get_submodule(owner_name) if owner_name else blocks[i]
                owner.register_parameter(attr, nn.Parameter(tensor.detach().clone()))
    delattr(model, SHARE_ATTR)
    return [list(g) for g in groups]


def run_share(ctx: CompressContext, config: ShareConfig) -> bool:
    """The ``share`` step."""
    from paretoedge.models import num_layers

    groups = share_groups(num_layers(ctx.model), config.groups)
    if all(len(g) == 1 for g in groups):
        return False
    tie(ctx.model, groups, init=config.init)
    return True


register_transform(
    "share",
    ShareConfig,
    Step("share", order=350, handler="paretoedge.compression._share:run_share"),
    note=(
        "Cross-layer sharing: groups of layers store one set of weights (the ONNX file holds "
        "one initializer per shared tensor), but every layer still runs, so latency is that "
        "of the unshared model."
    ),
)
