"""Search controller, study configuration, backends and Pareto computation."""

from __future__ import annotations

from paretoedge.search._cheap_metrics import SCREENED_ATTR, Screen, StructuralMetrics, screen
from paretoedge.search._config import (
    Budget,
    Constraint,
    DataSpec,
    ObjectiveSpec,
    ParamSpec,
    RecoverySpec,
    SamplerSpec,
    StudyConfig,
    apply_overrides,
    bundled_configs,
    load_config,
    parse_config,
    read_config_text,
)
from paretoedge.search._pareto import (
    DIRECTIONS,
    Direction,
    dominates,
    hypervolume,
    hypervolume_brute_force,
    non_dominated_sort,
    pareto_front,
)
from paretoedge.search._space import (
    BASELINE_SPECS,
    baseline_flat,
    baseline_params,
    candidate_flat,
    enumerate_space,
    space_size,
    suggest,
)

__all__ = [
    "BASELINE_SPECS",
    "DIRECTIONS",
    "SCREENED_ATTR",
    "Screen",
    "StructuralMetrics",
    "screen",
    "Budget",
    "Constraint",
    "DataSpec",
    "Direction",
    "ObjectiveSpec",
    "ParamSpec",
    "RecoverySpec",
    "SamplerSpec",
    "StudyConfig",
    "apply_overrides",
    "baseline_flat",
    "baseline_params",
    "bundled_configs",
    "candidate_flat",
    "enumerate_space",
    "load_config",
    "parse_config",
    "read_config_text",
    "space_size",
    "suggest",
    "dominates",
    "hypervolume",
    "hypervolume_brute_force",
    "non_dominated_sort",
    "pareto_front",
]
