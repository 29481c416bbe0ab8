"""Device metrics of a candidate from its structure alone, before any training.

Latency, peak memory, energy, flash/SRAM and stored size follow from a candidate's
*structure* (shapes, bit-widths, sparsity masks), not from its trained weights: recovery
keeps the pruning masks and quantisation happens after it. So the controller and the
screening sampler can cost a candidate on every device without the recovery fine-tune, by
compressing it with no training steps and running the hardware models on that export (the
TVM lowering is cached by structural hash, so a structure seen before costs a cost-model
query only).

One exception, stated where it applies: with ``distill.steps > 0``, a weight-dependent
transform after distillation (global magnitude pruning, ``lowrank.energy``) sees the
untrained student here, so its per-layer sparsities or ranks can differ slightly from the
trained candidate's. Every other transform gives the same structure either way.

:func:`screen` decides whether a candidate can enter any device's front at all: a
candidate that breaks, on every device, a constraint that needs no accuracy (or does not fit
the device) is never trained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paretoedge.objectives import DeviceMetrics, Evaluation

if TYPE_CHECKING:
    from paretoedge.compression import CompressionSpec
    from paretoedge.search._config import StudyConfig

#: Trial user attribute set on a trial stopped before training because it cannot enter any
#: device's front; its value lists why, per device.
SCREENED_ATTR = "paretoedge.screened_out"

#: Objectives and constraint metrics that the structure alone does not determine.
EXPENSIVE_METRICS = frozenset({"accuracy"})


@dataclass(frozen=True)
class StructuralMetrics:
    """What a candidate costs, known without training it.

    Attributes:
        size_bytes: Stored size (bits and sparsity applied).
        parameters: Parameter count of the compressed structure.
        sparsity: Fraction of zero weights.
        devices: The hardware model's prediction on each device.
    """

    size_bytes: int
    parameters: int
    sparsity: float
    devices: Mapping[str, DeviceMetrics] = field(default_factory=dict)

    def evaluation(self, accuracy: float = float("nan")) -> Evaluation:
        """An :class:`Evaluation` with these metrics and the given (e.g. predicted) accuracy."""
        return Evaluation(
            accuracy=accuracy,
            size_bytes=self.size_bytes,
            parameters=self.parameters,
            sparsity=self.sparsity,
            devices=dict(self.devices),
        )

    @classmethod
    def of(cls, evaluation: Evaluation) -> StructuralMetrics:
        return cls(
            size_bytes=evaluation.size_bytes,
            parameters=evaluation.parameters,
            sparsity=evaluation.sparsity,
            devices=dict(evaluation.devices),
        )


@dataclass(frozen=True)
class Screen:
    """Verdict of :func:`screen`: why the candidate cannot enter each device's front.

    ``reasons`` maps a device to the constraint labels / hardware violations that make the
    candidate infeasible there; a device missing from it is one whose front the candidate
    may still enter (depending on its accuracy).
    """

    reasons: Mapping[str, tuple[str, ...]]
    devices: tuple[str, ...]

    @property
    def trainable(self) -> bool:
        """False when the candidate is infeasible on every device of the study."""
        return any(d not in self.reasons for d in self.devices)

    def describe(self) -> str:
        return "; ".join(f"{d}: {', '.join(r)}" for d, r in self.reasons.items())


def screen(config: StudyConfig, metrics: StructuralMetrics, devices: Sequence[str]) -> Screen:
    """Which devices' fronts ``metrics`` is shut out of, before any training.

    A device's front is closed to the candidate when the hardware model reports a violation
    (flash, SRAM or RAM does not fit) or a constraint of that device that needs no accuracy
    is broken (``latency_ms[rpi4] <= 50``, ``size_bytes <= 4e6``). Fronts are per device, as
    :func:`~paretoedge.search.rank_candidates` ranks them, so a candidate too slow for one
    device still trains when it can enter another device's front.
    """
    ev = metrics.evaluation()
    reasons: dict[str, tuple[str, ...]] = {}
    for d in devices:
        m = metrics.devices.get(d)
        why: list[str] = []
        if m is not None and not m.feasible:
            why.extend(m.violations or ("does not fit",))
        for c in config.device_constraints(d):
            if c.metric in EXPENSIVE_METRICS:
                continue
            if c.device is not None and c.device not in metrics.devices:
                continue
            if c.violation(ev) > 0:
                why.append(c.label)
        if why:
            reasons[d] = tuple(why)
    return Screen(reasons=reasons, devices=tuple(devices))


def structural_key(spec: CompressionSpec) -> str:
    """A canonical key of a spec's structure: the spec without its training budget."""
    import json

    flat = spec.to_flat()
    keep = {k: v for k, v in flat.items() if not _is_training_key(k)}
    return json.dumps(keep, sort_keys=True, default=str)


#: Spec keys that change a model's weight values and facts (bits, scheme, sparsity) but not
#: its exported graph (activation quantisers aside, see :func:`graph_key`).
_WEIGHT_ONLY_KEYS = ("prune.", "quant.bits", "quant.scheme", "quant.layer_bits")


def graph_key(spec: CompressionSpec, model: Any, *, seq_len: int) -> str | None:
    """A key that two built candidates share only when their exports have the same graph.

    The graph follows from the architecture (every spec key but those that only change
    weights: pruning, bit-widths, quantisation schemes), from the built model's tensors'
    names, shapes and dtypes and its modules' types as the export sees them (every
    parametrization baked: a 4-bit uniform or cluster variant exports the fp32 graph), and
    from the export's sequence length.
    Two candidates with one key differ in weight values and facts only, so the second is
    costed on the first's graph with its own facts
    (:func:`paretoedge.hardware_profiles.with_weight_facts`), without a new export.

    Activation quantisers are part of the graph (which ones are on); their calibrated
    scales and zero points are values, and :func:`paretoedge.hardware_profiles.prepare`
    undoes the exporter's pooling of equal ones, so they do not change the graph either.

    Returns:
        The key, or None for a candidate whose export depends on values: shared weights
        (merged by content), hashed tables (materialised) and early exits (exported apart).
        Such a candidate is always exported.
    """
    import hashlib
    import json

    if spec.share is not None or spec.hash is not None or spec.exit is not None:
        return None
    # quantisation keys aside (what they change in the graph, which activation quantisers
    # are on, is in the modules below)
    arch = {k: v for k, v in _architecture(spec).items() if not k.startswith("quant.")}
    tensors = sorted(  # a parametrized tensor moves in the state dict's order
        (baked, list(t.shape), str(t.dtype))
        for n, t in model.state_dict().items()
        if (baked := _baked_tensor_name(n)) is not None
    )
    modules = [
        (n, type(m).__name__.removeprefix("Parametrized"), _act_quant_on(m))
        for n, m in model.named_modules()
        if "parametrizations" not in n.split(".")
    ]
    payload = json.dumps([arch, tensors, modules, seq_len], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _baked_tensor_name(name: str) -> str | None:
    """A state-dict entry as the export sees it: the export bakes every parametrization
    (pruning masks, fake quantisers, codebooks) into the tensor it parametrizes, so
    ``layer.parametrizations.weight.original`` is ``layer.weight`` and a parametrization's
    own buffers are not in the graph (None)."""
    head, sep, rest = name.partition(".parametrizations.")
    if not sep:
        return name
    tensor, _, tail = rest.partition(".")
    return f"{head}.{tensor}" if tail == "original" else None


def _act_quant_on(module: Any) -> bool:
    quantiser = getattr(module, "act_quant", None)
    return quantiser is not None and bool(quantiser.enabled)


def architecture_key(spec: CompressionSpec) -> str:
    """:func:`structural_key` without the keys that change weights only: candidates with
    one architecture key are costed one after another so that they share a graph."""
    import json

    return json.dumps(_architecture(spec), sort_keys=True, default=str)


def _architecture(spec: CompressionSpec) -> dict[str, Any]:
    """The flat spec keys that shape the architecture (no training, no weight-only key)."""
    return {
        k: v
        for k, v in spec.to_flat().items()
        if not _is_training_key(k) and not k.startswith(_WEIGHT_ONLY_KEYS)
    }


def _is_training_key(key: str) -> bool:
    # every distill.* field but the layers kept is a training hyper-parameter
    return key.startswith("recovery.") or (key.startswith("distill.") and key != "distill.layers")


def untrained(spec: CompressionSpec) -> CompressionSpec:
    """``spec`` with every training step removed (same structure, nothing trained)."""
    from dataclasses import replace

    distill = replace(spec.distill, steps=0) if spec.distill is not None else None
    return replace(spec, recovery=None, distill=distill)
