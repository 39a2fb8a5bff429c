"""HEXGEN budgets: each stage's share of the time left, by expected cost over the expected path."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from sloflow import Cost, Workflow
from sloflow.workflows import Registry, RunStatus, Runtime
from sloflow.workflows.budget import BudgetPlanner, proportional_share


def test_share_is_remaining_time_times_this_stage_over_this_plus_the_rest():
    assert proportional_share(10.0, 1.0, 4.0) == pytest.approx(2.0)
    assert proportional_share(10.0, 0.0, 0.0) == 10.0  # nothing declared: the stage may use it all
    assert proportional_share(-1.0, 1.0, 1.0) == 0.0  # already late


def linear_planner() -> BudgetPlanner:
    order = ["a", "b", "c"]
    return BudgetPlanner({"a": 1.0, "b": 2.0, "c": 1.0}, lambda s, _: order[order.index(s) + 1:])


def test_a_late_request_gets_a_tighter_budget_for_the_same_stage():
    planner = linear_planner()
    on_time = planner.budget("b", {}, now=100.0, deadline=108.0)
    late = planner.budget("b", {}, now=104.0, deadline=108.0)
    assert on_time == pytest.approx(8.0 * 2 / 3) and late == pytest.approx(4.0 * 2 / 3)
    assert planner.budget("c", {}, now=107.0, deadline=108.0) == pytest.approx(1.0)
    assert planner.budget("a", {}, now=0.0, deadline=None) is None  # background work


def test_stages_without_declared_costs_share_equally():
    planner = BudgetPlanner({"a": 0.0, "b": 0.0}, lambda s, _: ["b"] if s == "a" else [])
    assert planner.budget("a", {}, now=0.0, deadline=6.0) == pytest.approx(3.0)


class S(BaseModel):
    n: int = 0


def revise_workflow(pause_s: float = 0.0) -> Workflow:
    wf = Workflow("revise", state=S, slo=60.0)

    @wf.stage(cost=Cost(seconds=1.0))
    async def plan(s, ctx):
        await asyncio.sleep(pause_s)  # time spent here shrinks what the later stages get
        return {}

    @wf.stage(cost=Cost(seconds=2.0))
    async def write(s, ctx):
        return {"n": s.n + 1}

    @wf.stage(cost=Cost(seconds=1.0))
    async def review(s, ctx):
        return {}

    wf.then(plan, write, review)
    wf.loop(review, back_to=write, while_=lambda s: s.n < 3, max_times=4, expected=2)
    return wf


def test_expected_loop_repetitions_count_until_they_have_happened():
    wf = revise_workflow()
    # before any round: write+review three times (once plus two expected repetitions)
    assert wf.planner.rest_s("plan", {}) == pytest.approx(9.0)
    # after two rounds the rest of the path holds only the review still to come
    assert wf.planner.rest_s("write", {"review": 2}) == pytest.approx(1.0)


async def test_each_stage_budget_is_recomputed_from_the_time_actually_left(registry: Registry, memory_runtime: Runtime):
    wf = revise_workflow(pause_s=0.2)
    registry.add(wf)
    run = await memory_runtime.run("revise", {}, slo=10.0)
    assert run.status is RunStatus.succeeded, run.error
    # plan: 1 s of 1 + 9 s expected (write+review three times) => a tenth of the 10 s
    assert run.stages[0]["budget_s"] == pytest.approx(1.0, abs=0.05)
    planner = wf.planner
    rounds = 0
    for timing in run.stages:
        left = run.deadline - timing["started_at"]
        expected = planner.budget(timing["stage"], {"review": rounds}, timing["started_at"], run.deadline)
        assert timing["budget_s"] == pytest.approx(expected, rel=1e-6), timing
        assert 0 < timing["budget_s"] <= left
        rounds += timing["stage"] == "review"
    write_budgets = [t["budget_s"] for t in run.stages if t["stage"] == "write"]
    # three writes: the third is past the expected two repetitions, so it gets a larger share
    assert len(write_budgets) == 3 and write_budgets[2] > write_budgets[0]

