"""The Pareto front on plain data."""

from __future__ import annotations

from ednas.search.pareto import Point, best_within, dominates, pareto_front


def test_front_keeps_non_dominated_points_fastest_first() -> None:
    pts = [Point("a", 0.30, 5.0), Point("b", 0.20, 3.0), Point("c", 0.25, 6.0),  # c: slower and worse than a
           Point("d", 0.35, 9.0), Point("e", 0.20, 3.0), Point("f", 0.10, 4.0)]  # e ties b; f dominated by b
    assert [p.key for p in pareto_front(pts)] == ["b", "a", "d"]


def test_dominates_needs_one_strict_improvement() -> None:
    assert dominates(Point("a", 0.3, 2.0), Point("b", 0.3, 3.0))
    assert not dominates(Point("a", 0.3, 2.0), Point("b", 0.3, 2.0))
    assert not dominates(Point("a", 0.4, 3.0), Point("b", 0.3, 2.0))


def test_best_within_a_budget() -> None:
    pts = [Point("a", 0.30, 5.0), Point("b", 0.20, 3.0), Point("d", 0.35, 9.0)]
    assert best_within(pts, 6.0).key == "a"
    assert best_within(pts, 2.0) is None
    assert pareto_front([]) == []
