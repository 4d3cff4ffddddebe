"""The Pareto front of (accuracy up, latency down) on plain data: computed once here, drawn by
any backend (no Optuna types, so a report can recompute it from trials.csv)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Point:
    """One evaluated architecture."""

    key: str  # who it is (trial name or architecture hash)
    accuracy: float  # fraction, higher is better
    ms: float  # predicted latency, lower is better


def dominates(a: Point, b: Point) -> bool:
    """a is at least as good in both objectives and better in one."""
    return a.accuracy >= b.accuracy and a.ms <= b.ms and (a.accuracy > b.accuracy or a.ms < b.ms)


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The non-dominated points, fastest first. Exact ties (same accuracy and latency) keep
    the first occurrence only, so a duplicated architecture appears once."""
    ordered = sorted(points, key=lambda p: (p.ms, -p.accuracy))
    front: list[Point] = []
    best = float("-inf")
    for p in ordered:  # by latency: a point is on the front iff it beats every faster one
        if p.accuracy > best:
            front.append(p)
            best = p.accuracy
    return front


def best_within(points: Sequence[Point], max_ms: float) -> Point | None:
    """The most accurate point no slower than `max_ms` (the faster one on a tie)."""
    fits = [p for p in points if p.ms <= max_ms]
    return max(fits, key=lambda p: (p.accuracy, -p.ms)) if fits else None
