"""The latency budget of a search: "6ms", "6000us" or "75%" (of the base architecture's
predicted latency), resolved to milliseconds and checked against what the space can reach.

Parsing is separate from resolving: the text is checked (unit, sign, range) before any table
is loaded, so a typo costs nothing; resolving needs the base latency and the space's floor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ednas.errors import EdnasError

if TYPE_CHECKING:
    from ednas.arch import ArchSpec
    from ednas.arch.space import SearchSpace

_PATTERN = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(ms|us|µs|%)?\s*$")
_TO_MS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3}


class BudgetError(EdnasError):
    """A --budget that cannot be parsed or cannot be met."""


@dataclass(frozen=True)
class BudgetSpec:
    """The budget as typed: an absolute time or a fraction of the base."""

    text: str  # as the user typed it, e.g. "75%"
    ms: float | None = None  # absolute budget, or None for a relative one
    fraction: float | None = None  # of the base's predicted latency (0 < f < 1)


@dataclass(frozen=True)
class Budget:
    """A resolved budget: a candidate is feasible when its predicted latency <= ms."""

    text: str  # as typed
    ms: float  # the constraint in milliseconds
    base_ms: float  # the base architecture's predicted latency it was resolved against


def parse_budget(text: str) -> BudgetSpec:
    """Check a --budget string; every mistake is a one-line BudgetError."""
    m = _PATTERN.match(text or "")
    if m is None:
        raise BudgetError(f"--budget {text!r}: not a number with a unit; write e.g. 6ms, 6000us or 75%")
    value, unit = float(m.group(1)), m.group(2)
    if unit is None:
        raise BudgetError(f"--budget {text!r} has no unit; write {m.group(1)}ms, {m.group(1)}us or "
                          f"{m.group(1)}% (of the base architecture's predicted latency)")
    if value <= 0:
        raise BudgetError(f"--budget {text!r}: a latency budget must be greater than zero")
    if unit == "%":
        if value >= 100:
            raise BudgetError(f"--budget {text!r}: a budget of 100% or more of the base is no constraint; "
                              "give less than 100%, or an absolute budget such as 6ms")
        return BudgetSpec(text=text.strip(), fraction=value / 100)
    return BudgetSpec(text=text.strip(), ms=value * _TO_MS[unit])


def resolve_budget(spec: BudgetSpec, base_ms: float, floor_ms: Callable[[float], float]) -> Budget:
    """The budget in ms. `floor_ms(budget_ms)` returns the smallest predicted latency in the
    space (it may stop early once it finds anything <= budget_ms); a budget below it is
    refused with that number."""
    ms = spec.ms if spec.ms is not None else spec.fraction * base_ms  # type: ignore[operator]
    floor = floor_ms(ms)
    if ms < floor:
        raise BudgetError(
            f"--budget {spec.text} ({ms:.3f} ms) is impossible: the smallest predicted latency in the "
            f"search space is {floor:.3f} ms ({100 * floor / base_ms:.0f}% of the base's {base_ms:.3f} ms); "
            "raise the budget or search a smaller space")
    return Budget(text=spec.text, ms=ms, base_ms=base_ms)


def space_floor_ms(space: "SearchSpace", predict: Callable[["ArchSpec"], float], below: float | None = None) -> float:
    """The smallest predicted latency in `space` (ms).

    First a cheap local minimum (smallest numeric genes, then per-gene descent); when that is
    already <= `below` it is returned (the budget is reachable, the exact floor is not needed).
    Otherwise every architecture of `space.covering_archs()` (all width / neck / size
    combinations) is priced and the best one refined by the same descent."""
    from ednas.search.genes import descend, genes_of

    def smallest(_name: str, choices):
        values = list(choices)
        return min(values) if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
            else values[0]

    start = space.decode(smallest)
    ms = descend(space, genes_of(space, start) or {}, predict)[1]
    if below is not None and ms <= below:
        return ms
    best = min(space.covering_archs(), key=predict)
    return min(ms, descend(space, genes_of(space, best) or {}, predict)[1])
