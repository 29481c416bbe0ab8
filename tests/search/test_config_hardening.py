"""Malformed studies are refused by the validators, naming the field that is wrong.

Every entry of the shared catalog (``tests/_malformed.py``) must be refused with the field
it names; a property test then changes one field of a valid study to arbitrary data and
checks that the study is either accepted or refused with an error about that field (the
class of bug where ``space.quant.bits: [3]`` was reported as ``space.prune.sparsity``), on
one short line.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
from _malformed import MUTATIONS, Mutation, valid_study
from hypothesis import given, settings
from hypothesis import strategies as st

from paretoedge.errors import ConfigError
from paretoedge.search import apply_overrides, parse_config
from paretoedge.search._config import MAX_OVERRIDE_CHARS
from paretoedge.search._sampler_options import SAMPLER_OPTIONS, check_sampler_options


def _refusal(doc: dict[str, Any]) -> ConfigError | None:
    try:
        parse_config(doc)
    except ConfigError as exc:
        return exc
    return None


def _one_short_line(exc: ConfigError) -> None:
    text = str(exc)
    assert "\n" not in text and len(text) < 600, text[:200]


def test_the_valid_study_is_valid() -> None:
    cfg = parse_config(valid_study())
    assert cfg.name == "hardened"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=str)
def test_each_malformed_study_is_refused_naming_its_field(mutation: Mutation) -> None:
    exc = _refusal(mutation.apply(valid_study()))
    assert exc is not None, f"{mutation} was accepted"
    assert mutation.matches(exc.field), (mutation.field, str(exc))
    _one_short_line(exc)


def test_the_wrong_dimension_is_named_whatever_its_position() -> None:
    doc = valid_study()
    doc["space"] = {
        "prune.sparsity": {"low": 0.0, "high": 0.5, "step": 0.25},
        "heads.keep": [1.0, 0.5],
        "quant.bits": [3],
    }
    exc = _refusal(doc)
    assert exc is not None and exc.field == "space.quant.bits" and exc.value == 3, str(exc)
    assert "32, 16, 8, 4" in str(exc)


def test_a_nine_to_the_fifth_value_prints_a_short_line() -> None:
    value: Any = ["x" * 10] * 9
    for _ in range(4):
        value = [value] * 9
    exc = _refusal({**valid_study(), "name": value})
    assert exc is not None
    _one_short_line(exc)


_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", ".", "..", "-", "/etc", "../x", "rpi4", "tiny-bert", "1e-300", "\x00"])
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
#: Paths a property test may change, and the fields an error about each may also name.
_PATHS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("seed",): (),
    ("seq_len",): (),
    ("name",): (),
    ("model",): (),
    ("task",): (),
    ("description",): (),
    ("budget", "trials"): ("budget",),
    ("budget", "timeout_s"): ("budget",),
    ("sampler",): (),
    ("sampler", "options"): (),
    ("sampler", "options", "population_size"): (),
    ("sampler", "options", "mutation_prob"): (),
    ("space", "prune.sparsity"): (),
    ("space", "prune.sparsity", "low"): ("space.prune.sparsity",),
    ("space", "prune.sparsity", "high"): ("space.prune.sparsity",),
    ("space", "prune.sparsity", "step"): ("space.prune.sparsity",),
    ("space", "quant.bits"): (),
    ("devices",): ("objectives", "constraints"),
    ("objectives",): (),
    ("constraints",): (),
    ("recovery", "steps"): ("space",),
    ("recovery", "lr"): ("space",),
    ("data", "train_limit"): (),
    ("teacher", "epochs"): (),
    ("baselines",): (),
    ("early_stopping",): (),
}


def _related(path: tuple[str, ...], field: str) -> bool:
    dotted = ".".join(path)
    if field.startswith(dotted) or dotted.startswith(field) or field == "config":
        return True
    return any(field.startswith(other) for other in _PATHS[path])


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(sorted(_PATHS)), value=_VALUE)
def test_one_changed_field_is_accepted_or_refused_by_name(
    path: tuple[str, ...], value: Any
) -> None:
    doc = Mutation(path, value, "").apply(valid_study())
    exc = _refusal(doc)
    if exc is None:
        return
    assert _related(path, exc.field), (path, value, str(exc))
    _one_short_line(exc)


@settings(max_examples=100, deadline=None)
@given(key=st.text(max_size=40), value=st.text(max_size=200))
def test_arbitrary_overrides_refuse_with_one_line(key: str, value: str) -> None:
    try:
        doc = apply_overrides(valid_study(), [f"{key}={value}"])
        parse_config(doc)
    except ConfigError as exc:
        _one_short_line(exc)


def test_overrides_are_bounded() -> None:
    with pytest.raises(ConfigError, match="at most 10,000 characters"):
        apply_overrides(valid_study(), ["model=" + "a" * (MAX_OVERRIDE_CHARS + 1)])
    with pytest.raises(ConfigError, match="nested at most"):
        apply_overrides(valid_study(), ["fixed.x=" + "[" * 1000 + "]" * 1000])
    with pytest.raises(ConfigError, match="parts"):
        apply_overrides(valid_study(), ["a." * 40 + "b=1"])
    # an unclosed bracket is not YAML: it stays the string it was (and is refused by type)
    doc = apply_overrides(valid_study(), ["seed=[[["])
    assert doc["seed"] == "[[["


def test_yaml_1_2_floats_are_numbers() -> None:
    doc = apply_overrides(valid_study(), ["recovery.lr=5e-5", "budget.timeout_s=1E3"])
    cfg = parse_config(doc)
    assert cfg.recovery.lr == 5e-5 and cfg.budget.timeout_s == 1000.0


@pytest.mark.parametrize("sampler", sorted(SAMPLER_OPTIONS))
def test_sampler_option_limits_are_optunas(sampler: str) -> None:
    """Every option at the edges of its rule builds the real Optuna sampler; just outside,
    the rule refuses it (the rules are Optuna's limits, not guesses)."""
    from optuna.exceptions import ExperimentalWarning

    from paretoedge.search import sampler_for

    for key, rule in SAMPLER_OPTIONS[sampler].items():
        if rule.kind is bool:
            edges: list[Any] = [False, True]
            outside: list[Any] = [0, "true"]
        else:
            assert rule.low is not None and rule.high is not None
            edges = [rule.low, rule.high]
            step = 1 if rule.kind is int else 0.01
            outside = [rule.low - step, rule.high + step, math.inf, "1"]
        for value in edges:
            options = {key: value}
            if key == "group":
                options["multivariate"] = True
            doc = {**valid_study(), "sampler": {"name": sampler, "options": options}}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                sampler_for(parse_config(doc, check_names=False))
        for value in outside:
            with pytest.raises(ConfigError) as info:
                check_sampler_options(sampler, {key: value})
            assert info.value.field == f"sampler.options.{key}"


def test_seed_offsets_stay_in_numpys_range() -> None:
    from paretoedge.search import sampler_for
    from paretoedge.search._config import SEED_MAX

    cfg = parse_config({**valid_study(), "seed": SEED_MAX}, check_names=False)
    sampler_for(cfg, seed_offset=2**33)  # joins a study with many trials: no ValueError
