"""Pareto ranking with constraints and exact hypervolume.

Kept free of Optuna, torch and the database so the same code ranks a live study, the stored
candidates of a finished one (``add-device``) and the benchmark's brute-force fronts.

Conventions: every function takes the objective ``directions`` ("minimize"/"maximize")
explicitly and never guesses; a point's ``violation`` is a non-negative number (0 means
feasible), typically the sum of normalised constraint violations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from paretoedge._types import DIRECTIONS, Direction
from paretoedge.errors import ConfigError


def _as_minimization(
    points: Sequence[Sequence[float]], directions: Sequence[Direction]
) -> list[tuple[float, ...]]:
    for i, d in enumerate(directions):
        if d not in DIRECTIONS:
            raise ConfigError(f"directions[{i}]", d, DIRECTIONS)
    out = []
    for j, p in enumerate(points):
        if len(p) != len(directions):
            raise ConfigError(f"points[{j}]", tuple(p), f"{len(directions)} values")
        vals = tuple(
            -float(v) if d == "maximize" else float(v) for v, d in zip(p, directions, strict=True)
        )
        if any(math.isnan(v) for v in vals):
            raise ConfigError(f"points[{j}]", tuple(p), "numbers, not NaN")
        out.append(vals)
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` Pareto-dominates ``b`` (both already in minimisation form)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def _constrained_dominates(a: Sequence[float], va: float, b: Sequence[float], vb: float) -> bool:
    # Deb's constrained domination: feasible beats infeasible, less violation beats more,
    # and among feasible points ordinary Pareto domination decides.
    if va <= 0.0 and vb > 0.0:
        return True
    if va > 0.0 and vb > 0.0:
        return va < vb
    if va > 0.0:
        return False
    return dominates(a, b)


def non_dominated_sort(
    points: Sequence[Sequence[float]],
    directions: Sequence[Direction],
    violations: Sequence[float] | None = None,
) -> list[int]:
    """Rank every point by constrained non-dominated sorting (Deb et al., NSGA-II).

    Args:
        points: One row of objective values per candidate.
        directions: One direction per objective column.
        violations: Per point, total constraint violation (``<= 0`` means feasible); ``None``
            treats every point as feasible.

    Returns:
        The rank of each point, in input order: 0 is the (feasible) Pareto front, 1 the front
        once rank 0 is removed, and so on. Every feasible point ranks before every infeasible
        one; infeasible points are ordered by their violation. Identical points share a rank.
    """
    pts = _as_minimization(points, directions)
    n = len(pts)
    if violations is None:
        viol = [0.0] * n
    else:
        if len(violations) != n:
            raise ConfigError("violations", len(violations), f"one value per point ({n})")
        viol = [max(0.0, float(v)) for v in violations]
    dominated_by_count = [0] * n
    dominates_list: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if _constrained_dominates(pts[i], viol[i], pts[j], viol[j]):
                dominates_list[i].append(j)
                dominated_by_count[j] += 1
            elif _constrained_dominates(pts[j], viol[j], pts[i], viol[i]):
                dominates_list[j].append(i)
                dominated_by_count[i] += 1
    ranks = [-1] * n
    current = [i for i in range(n) if dominated_by_count[i] == 0]
    rank = 0
    while current:
        nxt = []
        for i in current:
            ranks[i] = rank
            for j in dominates_list[i]:
                dominated_by_count[j] -= 1
                if dominated_by_count[j] == 0:
                    nxt.append(j)
        current = nxt
        rank += 1
    return ranks


def pareto_front(
    points: Sequence[Sequence[float]],
    directions: Sequence[Direction],
    violations: Sequence[float] | None = None,
) -> list[int]:
    """Indices (ascending) of the rank-0 points of :func:`non_dominated_sort`."""
    return [i for i, r in enumerate(non_dominated_sort(points, directions, violations)) if r == 0]


def hypervolume(
    points: Sequence[Sequence[float]],
    reference: Sequence[float],
    directions: Sequence[Direction],
) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference``.

    The reference point is stated in the objectives' own units and directions (for a
    maximised accuracy it is a lower bound, for a minimised latency an upper bound). Points
    that do not strictly improve on the reference in every objective add nothing. Exact for
    any number of objectives (2-D sweep, higher dimensions by slicing); cost grows as
    ``n**(d-1)``, which is fine for the fronts of a study (tens to hundreds of points).
    """
    if len(reference) != len(directions):
        raise ConfigError("reference", tuple(reference), f"{len(directions)} values")
    ref = _as_minimization([reference], directions)[0]
    pts = [
        p
        for p in _as_minimization(points, directions)
        if all(x < r for x, r in zip(p, ref, strict=True))
    ]
    if not pts:
        return 0.0
    return _hv(sorted(set(pts)), ref)


def _hv(pts: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    d = len(ref)
    if d == 1:
        return ref[0] - min(p[0] for p in pts)
    if d == 2:
        area = 0.0
        best_y = ref[1]
        for x, y in sorted(pts):
            if y < best_y:
                area += (ref[0] - x) * (best_y - y)
                best_y = y
        return area
    # Slice along the last objective: between consecutive levels the dominated region's
    # cross-section is the (d-1)-dimensional hypervolume of the points at or below the level.
    pts = sorted(pts, key=lambda p: p[-1])
    volume = 0.0
    for k, p in enumerate(pts):
        upper = pts[k + 1][-1] if k + 1 < len(pts) else ref[-1]
        height = upper - p[-1]
        if height <= 0.0:
            continue
        section = _nondominated([q[:-1] for q in pts[: k + 1]])
        volume += height * _hv(section, ref[:-1])
    return volume


def _nondominated(pts: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    uniq = sorted(set(pts))
    return [p for p in uniq if not any(dominates(q, p) for q in uniq)]


def hypervolume_brute_force(
    points: Sequence[Sequence[float]],
    reference: Sequence[float],
    directions: Sequence[Direction],
) -> float:
    """Inclusion-exclusion over all subsets: exponential, only for checking :func:`hypervolume`."""
    ref = _as_minimization([reference], directions)[0]
    pts = [
        p
        for p in _as_minimization(points, directions)
        if all(x < r for x, r in zip(p, ref, strict=True))
    ]
    total = 0.0
    for size in range(1, len(pts) + 1):
        for subset in itertools.combinations(pts, size):
            corner = [max(c) for c in zip(*subset, strict=True)]
            box = math.prod(r - c for r, c in zip(ref, corner, strict=True))
            total += box if size % 2 else -box
    return total
