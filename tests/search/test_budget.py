"""Budget parsing, resolving and the space's latency floor."""

from __future__ import annotations

import random

import pytest

from ednas.latency import LatencyPredictor, LatencyTable
from ednas.search.budget import BudgetError, parse_budget, resolve_budget, space_floor_ms


@pytest.mark.parametrize("text, ms, fraction", [
    ("6ms", 6.0, None), ("6000us", 6.0, None), ("2.5 ms", 2.5, None), ("75%", None, 0.75), ("0.5%", None, 0.005),
])
def test_budget_forms(text: str, ms: float | None, fraction: float | None) -> None:
    spec = parse_budget(text)
    assert spec.ms == pytest.approx(ms) if ms is not None else spec.ms is None
    assert spec.fraction == pytest.approx(fraction) if fraction is not None else spec.fraction is None


@pytest.mark.parametrize("text, message", [
    ("6", "has no unit; write 6ms, 6us or 6%"),
    ("0ms", "greater than zero"),
    ("-3ms", "greater than zero"),
    ("0%", "greater than zero"),
    ("100%", "100% or more of the base is no constraint"),
    ("six ms", "not a number with a unit"),
    ("6 s", "not a number with a unit"),
])
def test_bad_budget_is_one_line(text: str, message: str) -> None:
    with pytest.raises(BudgetError, match=message) as err:
        parse_budget(text)
    assert "\n" not in str(err.value)


def test_percentage_is_of_the_base() -> None:
    budget = resolve_budget(parse_budget("75%"), base_ms=8.0, floor_ms=lambda _below: 1.0)
    assert budget.ms == pytest.approx(6.0) and budget.text == "75%" and budget.base_ms == 8.0


def test_impossible_budget_names_the_floor() -> None:
    with pytest.raises(BudgetError, match=r"impossible: the smallest predicted latency in the search space is 4\.250 ms"):
        resolve_budget(parse_budget("4ms"), base_ms=8.0, floor_ms=lambda _below: 4.25)


def test_floor_is_below_every_architecture(tiny) -> None:
    space, table = tiny.space, tiny.table
    predict = LatencyPredictor(LatencyTable.load(table, space.fingerprint())).predict
    floor = space_floor_ms(space, predict)
    rng = random.Random(0)
    sampled = min(predict(space.sample(rng)) for _ in range(400))
    assert 0 < floor <= sampled
    # the smallest architecture by construction: every numeric gene at its minimum, best flags
    smallest = min(predict(a) for a in space.covering_archs() if a.input_size == 64 and a.neck.width == 16)
    assert floor <= smallest
    # with a reachable `below` the cheap local minimum is enough (and still a real latency)
    assert floor <= space_floor_ms(space, predict, below=10 * floor) <= sampled
