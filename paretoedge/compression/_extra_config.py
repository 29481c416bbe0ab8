"""Configs of tensor decomposition, early exit and efficient attention (no torch import).

Like the other sections of :class:`~paretoedge.compression.CompressionSpec`, each config is a
frozen dataclass validated in ``__post_init__``: a bad value raises
:class:`~paretoedge.errors.ConfigError` naming the dotted field and what is allowed. Values
may arrive as strings (``--set exit.layers=1,2``, a categorical of the search space), so the
layer lists accept ``"1,2"``, ``2`` or ``(1, 2)`` and are stored as sorted tuples of ints.
Whether a layer index exists is checked when the transform meets the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from paretoedge.compression._transform import Step, register_transform
from paretoedge.errors import ConfigError

TENSOR_METHODS = ("cp", "tucker", "tt")
TENSOR_TARGETS = ("embeddings", "attention")
ATTENTION_KINDS = ("softmax", "local", "linear")


def _int_ok(value: Any, lo: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lo


#: Flat keys whose value is a list of encoder layers: (``all`` allowed, lowest index).
#: ``attention.layers`` counts layers from 0 and ``all`` (or empty) means every layer;
#: ``exit.layers`` counts the layers below an exit, so it starts at 1.
LAYER_LIST_KEYS: dict[str, tuple[bool, int]] = {
    "attention.layers": (True, 0),
    "exit.layers": (False, 1),
}


def _layer_tuple(field: str, value: Any, *, allow_empty: bool, lo: int) -> tuple[int, ...]:
    """Normalise ``"1,2"``, ``2``, ``[2, 1]`` to ``(1, 2)`` (and ``"all"`` to ``()`` where
    every layer is allowed); one-line error otherwise."""
    allowed = f"{'' if allow_empty else 'a non-empty '}comma-separated list of integers >= {lo}"
    if allow_empty:
        allowed = f"all or a {allowed}"
    items: list[Any]
    if isinstance(value, str):
        items = [t.strip() for t in value.strip("()[] ").split(",") if t.strip()]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(field, value, allowed)
    if allow_empty and len(items) == 1 and str(items[0]).strip().lower() == "all":
        items = []  # "all" may arrive split into ("all",) by the flat-key parser
    out: set[int] = set()
    for item in items:
        if isinstance(item, str):
            try:
                item = int(item)
            except ValueError:
                raise ConfigError(field, value, allowed) from None
        if not _int_ok(item, lo):
            raise ConfigError(field, value, allowed)
        out.add(int(item))
    if not out and not allow_empty:
        raise ConfigError(field, value, allowed)
    return tuple(sorted(out))


def layer_list_text(key: str, value: Any) -> str:
    """The canonical text of a layer-list value of ``key`` (one of :data:`LAYER_LIST_KEYS`):
    ``"0,2"`` for ``[2, 0]``, ``"2"``, ``" 0, 2"``; ``"all"`` for every layer.

    Raises:
        ConfigError: Not a list of layer indices (naming ``key`` and what is allowed).
    """
    allow_empty, lo = LAYER_LIST_KEYS[key]
    layers = _layer_tuple(key, value, allow_empty=allow_empty, lo=lo)
    return ",".join(map(str, layers)) or "all"


@dataclass(frozen=True)
class TensorConfig:
    """Tensor decomposition of the word embeddings and of each layer's Q/K/V projections.

    The embedding matrix (V x H) is viewed as a 3-way tensor (V, h1, h2) with h1 * h2 = H;
    a layer's query, key and value weights are stacked into a (3, H, H) tensor. tensorly
    decomposes each (``parafac``, ``tucker`` or ``tensor_train``) and the model then
    computes with the factors (see :mod:`paretoedge.compression._tensor`).

    Attributes:
        method: ``cp`` (CP/PARAFAC), ``tucker`` or ``tt`` (tensor train).
        rank: CP rank, Tucker rank of every mode (capped at the mode's size) or the TT
            ranks, an integer >= 1.
        targets: A non-empty subset of embeddings, attention.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"rank": 10**9}

    method: Literal["cp", "tucker", "tt"] = "tt"
    rank: int = 16
    targets: tuple[str, ...] = ("embeddings", "attention")

    def __post_init__(self) -> None:
        if self.method not in TENSOR_METHODS:
            raise ConfigError("tensor.method", self.method, TENSOR_METHODS)
        if not _int_ok(self.rank, 1):
            raise ConfigError("tensor.rank", self.rank, "an integer >= 1")
        targets = self.targets
        if isinstance(targets, str):
            targets = tuple(t.strip() for t in targets.split(",") if t.strip())
        targets = tuple(targets)
        if not targets or any(t not in TENSOR_TARGETS for t in targets):
            raise ConfigError(
                "tensor.targets",
                ",".join(map(str, targets)),
                "a non-empty subset of " + ", ".join(TENSOR_TARGETS),
            )
        object.__setattr__(self, "targets", tuple(t for t in TENSOR_TARGETS if t in targets))


@dataclass(frozen=True)
class ExitConfig:
    """Early-exit classifiers after chosen encoder layers (DeeBERT-style).

    Each exit is a small classifier (dense + tanh + linear on the [CLS] state) trained by
    distillation from the model's own final logits with the encoder frozen, so the final
    exit's predictions do not change. At inference a sample leaves at the first exit whose
    top softmax probability is >= ``threshold`` (the final classifier always answers).

    Attributes:
        layers: Exit after these many encoder layers (1 = after the first), each >= 1 and
            below the model's depth; a comma-separated list.
        threshold: Confidence needed to leave, in (0, 1]; higher exits later.
        steps: Optimiser steps training the exit heads (>= 0).
        lr: Learning rate of the exit heads, in (0, 1].
        batch_size: Examples per step, >= 1.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"threshold": 1.0}

    layers: tuple[int, ...] = (1,)
    threshold: float = 0.9
    steps: int = 200
    lr: float = 1e-3
    batch_size: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "layers", _layer_tuple("exit.layers", self.layers, allow_empty=False, lo=1)
        )
        t = self.threshold
        ok = isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
        if not ok or not 0 < t <= 1:
            raise ConfigError("exit.threshold", t, "a number in (0, 1]")
        if not _int_ok(self.steps, 0):
            raise ConfigError("exit.steps", self.steps, "an integer >= 0")
        lr = self.lr
        if not isinstance(lr, int | float) or isinstance(lr, bool) or not 0 < lr <= 1:
            raise ConfigError("exit.lr", lr, "a number in (0, 1]")
        if not _int_ok(self.batch_size, 1):
            raise ConfigError("exit.batch_size", self.batch_size, "an integer >= 1")


@dataclass(frozen=True)
class AttentionConfig:
    """Efficient attention replacing softmax attention in chosen layers.

    Attributes:
        kind: ``softmax`` (unchanged), ``local`` (each query attends to its own block of
            ``window`` tokens and the two neighbouring blocks: O(n * 3w) instead of O(n^2))
            or ``linear`` (kernelised, phi(x) = elu(x) + 1: O(n * d^2)).
        window: Block size of local attention, an integer >= 1.
        layers: Encoder layer indices (0-based) to change, e.g. ``"0,2"``; empty or
            ``"all"`` = every layer. A dimension of the search space like the other keys
            (``attention.layers: [all, "0", "0,1"]``).
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"kind": "softmax"}

    kind: Literal["softmax", "local", "linear"] = "local"
    window: int = 16
    layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ConfigError("attention.kind", self.kind, ATTENTION_KINDS)
        if not _int_ok(self.window, 1):
            raise ConfigError("attention.window", self.window, "an integer >= 1")
        object.__setattr__(
            self, "layers", _layer_tuple("attention.layers", self.layers, allow_empty=True, lo=0)
        )


_HANDLERS = "paretoedge.compression"

# Canonical order: the decomposition changes shapes, so it sits with the other factorings
# (after lowrank, before masks and quantisers); the attention swap has no weights and comes
# before recovery, which adapts the model to it; exit heads are trained last, on the final
# (recovered, quantised, baked) backbone they will sit on.
register_transform(
    "tensor",
    TensorConfig,
    Step("tensor", order=420, handler=f"{_HANDLERS}._tensor:run_tensor"),
    note=(
        "Tensor decomposition: the ONNX graph computes with the factors (a factored word "
        "embedding gathers one row of its first factor and expands it through small matmuls; "
        "Q/K/V share one input and one output factor), and the hardware model costs exactly "
        "those kernels."
    ),
)
register_transform(
    "attention",
    AttentionConfig,
    Step("attention", order=470, handler=f"{_HANDLERS}._attention:run_attention"),
    note=(
        "Efficient attention: the chosen layers run block-local or linear attention in the "
        "ONNX graph too; its gain grows with the sequence length (the predicted latency is "
        "for the exported length only)."
    ),
)
register_transform(
    "exit",
    ExitConfig,
    Step("exit", order=980, handler=f"{_HANDLERS}._exit:run_exit"),
    check=f"{_HANDLERS}._exit:check_exit",
    note=(
        "Early exit: `model.onnx` is the full path without the exits; run the per-exit "
        "prefix files as described in the Early exit section to get the expected latency."
    ),
)
