"""Gate policies: when a gate is required and how hard, from rate, load and wrong answers."""

from __future__ import annotations

import pytest

from sloflow.gating import GateDemand, GatePolicy, demand, doublings, route_group
from sloflow.planners.gates.puzzle import MAX_DIFFICULTY


def test_off_never_and_always_always() -> None:
    assert demand(GatePolicy(mode="off"), 1e6, 1e6, 9) is None
    assert demand(GatePolicy(mode="always"), 0.0, 0.0, 0) == GateDemand("always", 1)


def test_adaptive_thresholds_of_rate_and_load() -> None:
    p = GatePolicy(mode="adaptive", rate_per_s=2.0, load_s=10.0)
    assert demand(p, 1.99, 9.99, 0) is None
    assert demand(p, 1.99, 9.99, 3) is None  # wrong answers raise difficulty, they do not gate by themselves
    assert demand(p, 2.0, 0.0, 0) == GateDemand("rate", 1)
    assert demand(p, 0.0, 10.0, 0) == GateDemand("load", 1)
    assert demand(p, 2.0, 10.0, 0) == GateDemand("rate", 1)  # the key's own rate is named first: 429


@pytest.mark.parametrize(("rate", "load", "wrong", "difficulty"), [
    (3.9, 0, 0, 1), (4.0, 0, 0, 2), (8.0, 0, 0, 3), (2.0, 20.0, 0, 2), (4.0, 40.0, 1, 5), (1e9, 0, 0, MAX_DIFFICULTY),
])
def test_difficulty_steps_one_per_doubling_and_per_wrong_answer(rate: float, load: float, wrong: int, difficulty: int) -> None:
    p = GatePolicy(mode="adaptive", rate_per_s=2.0, load_s=10.0)
    assert demand(p, rate, load, wrong) == GateDemand("rate", difficulty)


def test_base_difficulty_and_always_mode_also_rise() -> None:
    assert demand(GatePolicy(mode="always", base_difficulty=2, rate_per_s=1.0), 4.0, 0.0, 0) == GateDemand("rate", 4)
    assert demand(GatePolicy(mode="always", base_difficulty=2), 0.0, 0.0, 1) == GateDemand("always", 3)


def test_doublings_and_route_groups() -> None:
    assert [doublings(v, 2.0) for v in (1.0, 2.0, 3.9, 4.0, 16.0)] == [-1, 0, 0, 1, 3]
    assert route_group("/v1/runs/abc") == "runs" and route_group("/v1/chat/completions") == "chat" and route_group("/") == ""


def test_policies_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        GatePolicy(mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        GatePolicy(rate_per_s=0)
