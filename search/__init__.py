"""Search controller, study configuration, backends and Pareto computation."""

from __future__ import annotations

from paretoedge.search._pareto import (
    DIRECTIONS,
    dominates,
    hypervolume,
    hypervolume_brute_force,
    non_dominated_sort,
    pareto_front,
)

__all__ = [
    "DIRECTIONS",
    "dominates",
    "hypervolume",
    "hypervolume_brute_force",
    "non_dominated_sort",
    "pareto_front",
]
