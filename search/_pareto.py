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
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

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


K = TypeVar("K", bound=Hashable)


class IncrementalRanking(Generic[K]):
    """The ranks of :func:`non_dominated_sort` for a set of points that grows one at a time,
    each addition costing one vectorised pass over the points instead of a new sort.

    Why: a study ranks its candidates after every trial; sorting them all again costs
    ``O(n**2)`` comparisons per trial, so the controller slowed down as the study grew.
    Adding a point ``p`` changes only two things: ``p``'s own rank (one more than the
    highest rank of the points that dominate it, 0 if none), and the ranks of points that
    ``p`` dominates, directly or through points whose rank it raised. Those are found level
    by level from ``p``; every other rank stays. The result equals :func:`non_dominated_sort`
    of all the points (a test checks it on random sets with ties and violations).

    A point equal to one already ranked (same values, same violation: a twin trial that
    reused an earlier candidate's result) is not added to the arrays: it takes that point's
    rank and follows it when it changes, so the per-addition pass runs over distinct
    points only (a study of 10,000 trials on a discrete space holds ~2,500).

    Points are identified by hashable keys. :meth:`plan` computes an addition without
    applying it (a caller that must first store it elsewhere applies it with :meth:`add`
    once that succeeded); :meth:`load` takes a point with a rank known to be right (read
    back from storage). Not thread-safe.

    Args:
        directions: One direction per objective column.
    """

    def __init__(self, directions: Sequence[Direction]) -> None:
        import numpy as np

        for i, d in enumerate(directions):
            if d not in DIRECTIONS:
                raise ConfigError(f"directions[{i}]", d, DIRECTIONS)
        self.directions = tuple(directions)
        self._sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
        self._pts = np.empty((16, len(directions)))
        self._viol = np.empty(16)
        self._rank = np.empty(16, dtype=np.int64)
        self._keys: list[K] = []
        self._index: dict[K, int] = {}
        #: (violation, *point) -> its row, to find a point equal to one ranked
        self._rows: dict[tuple[float, ...], int] = {}
        #: key of a point equal to one ranked -> that point's row; row -> those keys
        self._copy_row: dict[K, int] = {}
        self._copies: dict[int, list[K]] = {}
        self._added: list[K] = []

    def __len__(self) -> int:
        return len(self._added)

    def __contains__(self, key: object) -> bool:
        return key in self._index or key in self._copy_row

    def _row(self, key: K) -> int:
        row = self._index.get(key)
        return self._copy_row[key] if row is None else row

    def rank(self, key: K) -> int:
        return int(self._rank[self._row(key)])

    def ranks(self) -> dict[K, int]:
        """Key -> rank of every point."""
        out = dict(zip(self._keys, self._rank[: len(self._keys)].tolist(), strict=True))
        out.update((k, int(self._rank[row])) for k, row in self._copy_row.items())
        return out

    def front(self) -> list[K]:
        """The keys of rank 0, in the order they were added."""
        return [k for k in self._added if self._rank[self._row(k)] == 0]

    def _prepare(self, point: Sequence[float], violation: float) -> tuple[Any, float]:
        import numpy as np

        if len(point) != len(self._sign):
            raise ConfigError("point", tuple(point), f"{len(self._sign)} values")
        p = np.asarray([float(v) for v in point]) * self._sign
        if np.isnan(p).any():
            raise ConfigError("point", tuple(point), "numbers, not NaN")
        return p, max(0.0, float(violation))

    @staticmethod
    def _pareto_dominating(pts: Any, p: Any) -> Any:
        """Mask of the rows of ``pts`` that Pareto-dominate ``p``."""
        import numpy as np

        return np.all(pts <= p, axis=1) & np.any(pts < p, axis=1)

    def plan(
        self, key: K, point: Sequence[float], violation: float = 0.0
    ) -> tuple[int, dict[K, int]]:
        """The rank the point would get, and key -> new rank of every point whose rank it
        would change. Nothing is changed.

        Feasible points rank among themselves by Pareto domination; every infeasible point
        ranks after all of them, by its violation alone (Deb's rule, as
        :func:`non_dominated_sort`): rank = number of feasible ranks + number of distinct
        smaller violations.

        Raises:
            ConfigError: the key is already ranked, or a value is NaN or missing.
        """
        if key in self:
            raise ConfigError("key", key, "a point not ranked yet")
        p, v = self._prepare(point, violation)
        same = self._rows.get((v, *p.tolist()))
        if same is not None:  # ranked with its equal; nothing else moves
            return int(self._rank[same]), {}
        own, out = self._plan_new(p, v)
        for k, r in list(out.items()):  # equal points move with the one they equal
            out.update((c, r) for c in self._copies.get(self._index[k], ()))
        return own, out

    def _plan_new(self, p: Any, v: float) -> tuple[int, dict[K, int]]:
        """:meth:`plan` for a point equal to none ranked, over the distinct points."""
        import numpy as np

        n = len(self._keys)
        pts, viol, rank = self._pts[:n], self._viol[:n], self._rank[:n]
        feasible = viol <= 0.0
        fronts = int(rank[feasible].max()) + 1 if feasible.any() else 0
        infeasible = np.flatnonzero(~feasible)
        if v > 0.0:
            worse = viol[infeasible]
            own = fronts + int(np.unique(worse[worse < v]).size)
            if (worse == v).any():
                return own, {}
            shifted = infeasible[worse > v]
            return own, {self._keys[i]: int(rank[i]) + 1 for i in shifted.tolist()}
        idx = np.flatnonzero(feasible)
        fpts, frank = pts[idx], rank[idx]
        above = self._pareto_dominating(fpts, p)
        own = int(frank[above].max()) + 1 if above.any() else 0
        below = np.all(p <= fpts, axis=1) & np.any(p < fpts, axis=1)
        changed = self._cascade(fpts, frank, np.flatnonzero(below), p, own)
        out = {self._keys[int(idx[i])]: r for i, r in changed.items()}
        new_fronts = max([fronts, own + 1, *(r + 1 for r in changed.values())])
        if new_fronts != fronts:
            shift = new_fronts - fronts
            out.update({self._keys[i]: int(rank[i]) + shift for i in infeasible.tolist()})
        return own, out

    @staticmethod
    def _cascade(pts: Any, rank: Any, below: Any, p: Any, own: int) -> dict[int, int]:
        """Row -> new rank of the feasible points (rows of ``pts``) that a new feasible
        point ``p`` of rank ``own`` pushes down; ``below`` are the rows ``p`` dominates.

        Points whose rank rose (``p`` first) raise the ranks of the points they dominate.
        A dominator always has a lower old rank than what it dominates, so walking the
        dominated points by ascending old rank sees every raised dominator first.
        """
        import numpy as np

        changed: dict[int, int] = {}
        if below.size == 0:
            return changed
        src_pts, src_rank = [p], [own]
        below = below[np.argsort(rank[below], kind="stable")]
        for level in np.split(below, np.flatnonzero(np.diff(rank[below])) + 1):
            sp, sr = np.array(src_pts), np.array(src_rank)
            lp = pts[level]
            hit = np.all(sp[:, None, :] <= lp[None, :, :], axis=2) & np.any(
                sp[:, None, :] < lp[None, :, :], axis=2
            )
            best = np.where(hit, sr[:, None] + 1, -1).max(axis=0)
            for i, new in zip(level.tolist(), best.tolist(), strict=True):
                if new > rank[i]:
                    changed[i] = new
                    src_pts.append(pts[i])
                    src_rank.append(new)
        return changed

    def add(
        self,
        key: K,
        point: Sequence[float],
        violation: float,
        rank: int,
        reranked: Mapping[K, int],
    ) -> None:
        """Apply what :meth:`plan` returned for this point (the ranking must not have
        changed in between)."""
        self.load(key, point, violation, rank)
        for k, r in reranked.items():
            self._rank[self._row(k)] = r

    def insert(self, key: K, point: Sequence[float], violation: float = 0.0) -> int:
        """Add the point, updating the ranks it changes; returns its rank."""
        own, reranked = self.plan(key, point, violation)
        self.add(key, point, violation, own, reranked)
        return own

    def load(self, key: K, point: Sequence[float], violation: float, rank: int) -> None:
        """Add the point with a rank known to be right for the points loaded so far plus
        those still to be loaded (the ranks of a stored front); no rank is recomputed."""
        import numpy as np

        if key in self:
            raise ConfigError("key", key, "a point not ranked yet")
        p, v = self._prepare(point, violation)
        self._added.append(key)
        values = (v, *p.tolist())
        same = self._rows.get(values)
        if same is not None:
            self._copy_row[key] = same
            self._copies.setdefault(same, []).append(key)
            return
        n = len(self._keys)
        self._rows[values] = n
        if n == len(self._viol):
            grow = max(16, n)
            self._pts = np.concatenate([self._pts, np.empty((grow, self._pts.shape[1]))])
            self._viol = np.concatenate([self._viol, np.empty(grow)])
            self._rank = np.concatenate([self._rank, np.empty(grow, dtype=np.int64)])
        self._pts[n], self._viol[n], self._rank[n] = p, v, rank
        self._keys.append(key)
        self._index[key] = n
