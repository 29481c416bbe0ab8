"""From a study's search space to candidates: sampling, enumeration and baselines.

A candidate is a :class:`~paretoedge.compression.CompressionSpec` (:func:`candidate_spec`):
the sampled parameters, the study's ``fixed`` keys and its recovery budget. The parameters
keep their dotted names (``prune.sparsity``: Optuna's parameter names, the YAML's keys);
this module is the edge where they become the typed spec.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from paretoedge.compression import identity_flat
from paretoedge.errors import ConfigError
from paretoedge.search._config import ParamSpec, StudyConfig

if TYPE_CHECKING:
    import optuna

    from paretoedge.compression import CompressionSpec

#: The flat spec of each baseline. The teacher is the uncompressed fine-tuned model (no
#: recovery); int8 is uniform per-channel post-training quantisation with int8 activations.
BASELINE_SPECS: dict[str, dict[str, Any]] = {
    "teacher": {},
    "int8": {"quant.bits": 8, "quant.scheme": "uniform"},
}

#: The value of each key that leaves the model unchanged (used to place baselines in the
#: space so samplers see them as ordinary points); declared by each transform config's
#: ``IDENTITY``.
_IDENTITY: dict[str, Any] = identity_flat()


def suggest(trial: optuna.Trial, space: Sequence[ParamSpec]) -> dict[str, Any]:
    """Sample the active parameters of ``space`` in order, honouring ``when`` conditions."""
    values: dict[str, Any] = {}
    for p in space:
        if not p.active(values):
            continue
        if p.kind == "categorical":
            v: Any = trial.suggest_categorical(p.key, list(p.choices))
        elif p.kind == "int":
            assert p.low is not None and p.high is not None
            v = trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            assert p.low is not None and p.high is not None
            v = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
            if p.step is not None:
                # Optuna returns low + k * step, so 0.1 steps give 0.30000000000000004;
                # the spec stores the grid value a person wrote.
                v = round(v, 12)
        values[p.key] = v
    return values


def enumerate_space(space: Sequence[ParamSpec]) -> Iterator[dict[str, Any]]:
    """Every candidate of an enumerable space (categorical or stepped dimensions).

    Conditional parameters are expanded only where their conditions hold, so each
    distinct candidate appears once.
    """

    def rec(i: int, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(space):
            yield dict(values)
            return
        p = space[i]
        if not p.active(values):
            yield from rec(i + 1, values)
            return
        for v in p.grid():
            values[p.key] = v
            yield from rec(i + 1, values)
            del values[p.key]

    yield from rec(0, {})


def space_size(space: Sequence[ParamSpec]) -> int:
    return sum(1 for _ in enumerate_space(space))


def candidate_flat(config: StudyConfig, params: Mapping[str, Any]) -> dict[str, Any]:
    """The flat compression spec of a sampled candidate.

    The study's ``fixed`` keys and recovery budget apply unless the space sets them.
    """
    flat: dict[str, Any] = dict(config.fixed)
    flat.update(params)
    if config.recovery.steps > 0:
        flat.setdefault("recovery.steps", config.recovery.steps)
        flat.setdefault("recovery.lr", config.recovery.lr)
        flat.setdefault("recovery.batch_size", config.recovery.batch_size)
    return flat


def candidate_spec(config: StudyConfig, params: Mapping[str, Any]) -> CompressionSpec:
    """The typed spec of a sampled candidate (:func:`candidate_flat` read as a spec).

    Raises:
        ConfigError: a value the compression configs refuse (naming the dotted key).
    """
    from paretoedge.compression import CompressionSpec

    return CompressionSpec.from_flat(candidate_flat(config, params))


def baseline_spec(name: str) -> CompressionSpec:
    """The typed spec of the baseline ``name`` (:data:`BASELINE_SPECS`)."""
    from paretoedge.compression import CompressionSpec

    return CompressionSpec.from_flat(baseline_flat(name))


def baseline_flat(name: str) -> dict[str, Any]:
    try:
        return dict(BASELINE_SPECS[name])
    except KeyError:
        raise ConfigError("baselines", name, sorted(BASELINE_SPECS)) from None


def baseline_params(name: str, space: Sequence[ParamSpec]) -> dict[str, Any]:
    """Parameters in ``space`` closest to the baseline ``name``.

    They are what the sampler records for the baseline trial; the trial itself evaluates the
    exact :data:`BASELINE_SPECS` entry. Where the space can express the baseline (e.g. it
    contains ``quant.bits: 32`` and ``prune.sparsity: 0``) both agree exactly.
    """
    target = {**_IDENTITY, **baseline_flat(name)}
    values: dict[str, Any] = {}
    for p in space:
        if not p.active(values):
            continue
        want = target.get(p.key)
        if p.key.startswith("quant.layer_bits."):
            want = target["quant.bits"]
        values[p.key] = _closest(p, want)
    return values


def _closest(p: ParamSpec, want: Any) -> Any:
    if p.kind == "categorical":
        if want in p.choices:
            return want
        numeric = [c for c in p.choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if isinstance(want, int | float) and numeric:
            return min(numeric, key=lambda c: (abs(c - want), -c))
        return p.choices[0]
    assert p.low is not None and p.high is not None
    if not isinstance(want, int | float):
        want = p.high
    v = min(max(float(want), p.low), p.high)
    if p.step is not None:
        k = round((v - p.low) / p.step)
        v = round(p.low + k * p.step, 12)
        v = min(v, p.high)
    if p.kind == "int":
        return int(round(v))
    return float(round(v, 10))
