"""Constrained non-dominated sorting and hypervolume against brute force."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paretoedge.errors import ConfigError
from paretoedge.search import (
    dominates,
    hypervolume,
    hypervolume_brute_force,
    non_dominated_sort,
    pareto_front,
)

coord = st.integers(min_value=0, max_value=9).map(float)


def points(d: int, max_size: int = 8) -> st.SearchStrategy[list[tuple[float, ...]]]:
    return st.lists(st.tuples(*[coord] * d), min_size=0, max_size=max_size)


def _brute_front(pts, violations):
    feasible = [i for i, v in enumerate(violations) if v <= 0]
    if not feasible and violations:
        best = min(violations)
        return [i for i, v in enumerate(violations) if v == best]
    return [i for i in feasible if not any(dominates(pts[j], pts[i]) for j in feasible)]


@given(points(3, 12), st.data())
@settings(max_examples=200, deadline=None)
def test_front_matches_brute_force(pts, data):
    viol = data.draw(
        st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0]), min_size=len(pts), max_size=len(pts))
    )
    assert pareto_front(pts, ["minimize"] * 3, viol) == _brute_front(pts, viol)


@given(points(2, 12))
@settings(max_examples=100, deadline=None)
def test_ranks_are_layers(pts):
    ranks = non_dominated_sort(pts, ["minimize", "minimize"])
    remaining = list(range(len(pts)))
    r = 0
    while remaining:
        layer = [i for i in remaining if not any(dominates(pts[j], pts[i]) for j in remaining)]
        assert sorted(i for i in remaining if ranks[i] == r) == layer
        remaining = [i for i in remaining if i not in layer]
        r += 1


def test_maximize_direction_flips():
    pts = [(0.9, 10.0), (0.8, 5.0), (0.7, 20.0)]
    assert pareto_front(pts, ["maximize", "minimize"]) == [0, 1]
    assert non_dominated_sort(pts, ["maximize", "minimize"]) == [0, 0, 1]


def test_feasible_ranks_before_infeasible():
    pts = [(0.0, 0.0), (5.0, 5.0), (9.0, 9.0)]
    ranks = non_dominated_sort(pts, ["minimize", "minimize"], [1.0, 0.0, 0.0])
    assert ranks == [2, 0, 1]
    ranks = non_dominated_sort(pts, ["minimize", "minimize"], [1.0, 0.5, 0.0])
    assert ranks == [2, 1, 0]


@pytest.mark.parametrize("d", [2, 3, 4])
@given(data=st.data())
@settings(max_examples=80, deadline=None)
def test_hypervolume_matches_inclusion_exclusion(d, data):
    pts = data.draw(points(d, 7))
    dirs = data.draw(st.lists(st.sampled_from(["minimize", "maximize"]), min_size=d, max_size=d))
    ref = [10.0 if x == "minimize" else -1.0 for x in dirs]
    pts = [tuple(-p if x == "maximize" else p for p, x in zip(pt, dirs, strict=True)) for pt in pts]
    assert hypervolume(pts, ref, dirs) == pytest.approx(hypervolume_brute_force(pts, ref, dirs))


def test_hypervolume_known_values():
    assert hypervolume([(1.0, 1.0)], [3.0, 3.0], ["minimize"] * 2) == 4.0
    assert hypervolume([(1.0, 2.0), (2.0, 1.0)], [3.0, 3.0], ["minimize"] * 2) == 3.0
    # a unit cube corner and a point outside the reference box
    assert hypervolume([(0.0, 0.0, 0.0), (5.0, 0.0, 0.0)], [1.0, 1.0, 1.0], ["minimize"] * 3) == 1.0
    # accuracy maximised against reference 0.5, latency minimised against 100 ms
    assert hypervolume([(0.9, 50.0)], [0.5, 100.0], ["maximize", "minimize"]) == pytest.approx(20.0)


def test_hypervolume_grid_count_3d():
    pts = [(1, 3, 2), (2, 2, 2), (3, 1, 1), (0, 4, 4)]
    ref = (5, 5, 5)
    cells = sum(
        1
        for c in itertools.product(range(5), repeat=3)
        if any(all(p[k] <= c[k] for k in range(3)) for p in pts)
    )
    assert hypervolume(pts, ref, ["minimize"] * 3) == cells


def test_bad_input_names_the_field():
    with pytest.raises(ConfigError, match=r"directions\[1\]"):
        non_dominated_sort([(1, 2)], ["minimize", "up"])
    with pytest.raises(ConfigError, match=r"points\[0\]"):
        pareto_front([(1, 2, 3)], ["minimize", "minimize"])
    with pytest.raises(ConfigError, match="violations"):
        non_dominated_sort([(1, 2)], ["minimize", "minimize"], [0.0, 1.0])
