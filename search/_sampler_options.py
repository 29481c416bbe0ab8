"""The options each sampler accepts, with the limits Optuna's constructors enforce.

Checked when the study file is validated, before anything is stored: an option Optuna
would refuse (``population_size: 1``, ``mutation_prob: 5``) used to surface as a traceback
from the sampler's constructor after the study row had been written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paretoedge.errors import ConfigError


@dataclass(frozen=True)
class OptionRule:
    """One option: its type (``int``, ``float`` or ``bool``), bounds, and whether ``null`` is
    allowed (Optuna's default then applies)."""

    kind: type
    low: float | None = None
    high: float | None = None
    nullable: bool = False

    @property
    def allowed(self) -> str:
        if self.kind is bool:
            text = "true or false"
        else:
            what = "an integer" if self.kind is int else "a finite number"
            text = f"{what} in [{self.low:g}, {self.high:g}]"
        return text + (" or null" if self.nullable else "")

    def check(self, field: str, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif isinstance(value, bool):
            ok = False
        elif self.kind is int:
            ok = isinstance(value, int)
        else:
            ok = isinstance(value, int | float) and math.isfinite(value)
        if ok and self.low is not None and self.high is not None:
            ok = self.low <= value <= self.high
        if not ok:
            raise ConfigError(field, value, self.allowed)
        return float(value) if self.kind is float else value


_PROBABILITY = OptionRule(float, 0.0, 1.0)
_STARTUP = OptionRule(int, 0, 1_000_000)

#: sampler name -> option name -> rule.
SAMPLER_OPTIONS: dict[str, dict[str, OptionRule]] = {
    "nsga2": {
        # NSGA-II's default crossover mates two parents: a population of one cannot breed.
        "population_size": OptionRule(int, 2, 100_000),
        "mutation_prob": OptionRule(float, 0.0, 1.0, nullable=True),
        "crossover_prob": _PROBABILITY,
        "swapping_prob": _PROBABILITY,
    },
    "tpe": {
        "n_startup_trials": _STARTUP,
        "n_ei_candidates": OptionRule(int, 1, 100_000),
        "multivariate": OptionRule(bool),
        "group": OptionRule(bool),
        "consider_endpoints": OptionRule(bool),
    },
    "gp": {
        "n_startup_trials": _STARTUP,
        "deterministic_objective": OptionRule(bool),
    },
    "random": {},
    # the screening sampler (paretoedge.search._screening): candidates drawn per proposal
    # and completed trials before its accuracy model is used
    "screening": {
        "pool_size": OptionRule(int, 1, 1_000_000),
        "n_startup_trials": OptionRule(int, 1, 1_000_000),
    },
}


def _tpe_group_needs_multivariate(options: Mapping[str, Any]) -> None:
    if options.get("group") and not options.get("multivariate"):
        raise ConfigError(
            "sampler.options.group", True, "false unless sampler.options.multivariate is true"
        )


_CROSS_CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "tpe": _tpe_group_needs_multivariate,
}


def check_sampler_options(name: str, options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The options of sampler ``name``, each checked, sorted by name.

    Raises:
        ConfigError: ``sampler.options.<key>`` with the allowed keys (unknown key) or the
            allowed values (bad value).
    """
    rules = SAMPLER_OPTIONS[name]
    out = {}
    for key, value in options.items():
        rule = rules.get(key) if isinstance(key, str) else None
        if rule is None:
            raise ConfigError(f"sampler.options.{key}", value, sorted(rules) or "none")
        out[key] = rule.check(f"sampler.options.{key}", value)
    cross = _CROSS_CHECKS.get(name)
    if cross is not None:
        cross(out)
    return tuple(sorted(out.items()))
