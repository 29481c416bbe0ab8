"""The transform registry: each compression transform is a plug-in (torchao-style dispatch).

A transform is one section of :class:`~paretoedge.compression.CompressionSpec` (``"prune"``,
``"quant"``, ...) with a frozen config dataclass and one or more *steps*. A step has a name
(what ``CompressionResult.applied`` records), a place in the canonical order (an integer;
smaller runs first) and a handler. :func:`paretoedge.compression.compress` walks every
registered step in order and calls the handler of each step whose section is set in the spec.

Adding a transform touches one module (plus its tests)::

    @dataclass(frozen=True)
    class HiddenConfig:          # torch-free, validated in __post_init__ (ConfigError)
        keep: float = 0.75

    register_transform(
        "hidden",                # the spec section and the prefix of its dotted keys
        HiddenConfig,
        Step("hidden", order=250, handler="paretoedge.compression._hidden:run_hidden"),
    )

and one field ``hidden: HiddenConfig | None = None`` of ``CompressionSpec`` (the spec is a
typed dataclass, so the field is declared there; its ``__post_init__`` checks that every
registered section has one). The module must be imported by ``_config.py`` so that reading
a spec registers it; it must not import torch at module level (the CLI, search and HTTP API
read specs without torch), which is why handlers are named ``"module:function"`` and
imported on first use.

A handler is ``handler(ctx: CompressContext, config) -> bool``: it transforms ``ctx.model``
in place (or assigns a new model to ``ctx.model``) and returns True when it changed the
model (the step is then recorded as applied). An optional ``check(ctx, config)`` runs for
every set section before any step, so a spec that needs data it was not given fails before
any training starts.

Canonical order of the built-in steps (gaps leave room for new ones):

==========  ==============  =====================================================
order       step            why here
==========  ==============  =====================================================
100         distill         fewer layers first: everything after works on the student
200         heads           shape changes come before masks and quantisers, which a
300         ffn             later slice or factorisation would lose
400         lowrank
500         prune           unstructured masks, kept applied from here on
600         quant(qat)      fake quantisers trained through by the recovery
700         recovery        distillation from the teacher (masks kept)
800         quant(ptq)      quantise the recovered weights
900         (bake)          masks and quantisers written into the weights (always)
950         calibrate       int8 activation scales of the baked model
==========  ==============  =====================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretoedge._registry import Registry

if TYPE_CHECKING:
    from paretoedge.compression._context import CompressContext

#: Steps ordered after this see the baked model (masks and quantisers written in).
BAKE_ORDER = 900

Handler = Callable[["CompressContext", Any], bool]
Check = Callable[["CompressContext", Any], None]


@dataclass(frozen=True)
class Step:
    """One step of a transform in the canonical order.

    Attributes:
        name: Recorded in ``CompressionResult.applied`` when the handler returns True;
            unique over all transforms.
        order: Place in the canonical order (smaller first); unique, and not
            :data:`BAKE_ORDER`.
        handler: ``"package.module:function"`` (imported on first use) or the callable.
    """

    name: str
    order: int
    handler: str | Handler

    def resolve(self) -> Handler:
        """The handler callable (importing its module the first time)."""
        if callable(self.handler):
            return self.handler
        module, _, attr = self.handler.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Transform:
    """A registered transform: spec section, config class, steps and optional pre-check."""

    section: str
    config: type
    steps: tuple[Step, ...]
    check: str | Check | None = None
    note: str | None = None

    def resolve_check(self) -> Check | None:
        if self.check is None or callable(self.check):
            return self.check
        module, _, attr = self.check.partition(":")
        return getattr(importlib.import_module(module), attr)


TRANSFORMS: Registry[Transform] = Registry("transform")


def register_transform(
    section: str,
    config: type,
    *steps: Step,
    check: str | Check | None = None,
    note: str | None = None,
) -> Transform:
    """Register ``config`` as the spec section ``section`` with its ``steps``.

    ``note`` is a sentence for the model card of every export using the transform (what a
    device runs when it differs from what is stored, e.g. materialised hashed weights).

    Raises:
        RuntimeError: a section, step name or order registered twice, or no step (these
            are programming errors, found at import time).
    """
    if not steps:
        raise RuntimeError(f"transform {section!r} has no step")
    taken = {s.name: s.order for _, s in ordered_steps()}
    orders = set(taken.values()) | {BAKE_ORDER}
    for step in steps:
        if step.name in taken or step.order in orders:
            raise RuntimeError(f"step {step.name!r} (order {step.order}) clashes with another")
        taken[step.name] = step.order
        orders.add(step.order)
    transform = Transform(
        section=section, config=config, steps=tuple(steps), check=check, note=note
    )
    TRANSFORMS.register(section)(transform)
    return transform


def ordered_steps() -> list[tuple[Transform, Step]]:
    """Every registered (transform, step), in canonical order."""
    pairs = [(TRANSFORMS.get(n), s) for n in TRANSFORMS for s in TRANSFORMS.get(n).steps]
    return sorted(pairs, key=lambda pair: pair[1].order)


def sections() -> dict[str, type]:
    """Spec section -> config class, in canonical order of each section's first step."""
    out: dict[str, type] = {}
    for transform, _ in ordered_steps():
        out.setdefault(transform.section, transform.config)
    return out


def step_names() -> tuple[str, ...]:
    """Names of every step that can appear in ``applied``, in canonical order."""
    return tuple(step.name for _, step in ordered_steps())


def card_notes(spec: Any) -> list[str]:
    """The model-card notes of the transforms ``spec`` (a CompressionSpec) uses."""
    return [
        TRANSFORMS.get(name).note or ""
        for name in sections()
        if getattr(spec, name, None) is not None and TRANSFORMS.get(name).note
    ]
