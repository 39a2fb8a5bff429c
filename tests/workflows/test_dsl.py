"""Definition-time checks: a bad workflow fails when it is written, naming the stage to fix."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from sloflow import Cost, Workflow
from sloflow.errors import ConfigError


class S(BaseModel):
    n: int = 0


async def a(s, ctx):
    return {}


async def b(s, ctx):
    return {}


async def c(s, ctx):
    return {}


def wf_with(*stages, **kw) -> Workflow:
    wf = Workflow("w", state=S, **kw)
    for fn in stages:
        wf.stage(fn)
    return wf


def test_a_stage_that_is_not_async_is_refused_with_its_name():
    wf = Workflow("w", state=S)
    with pytest.raises(ConfigError, match="stage 'sync_stage' .* must be `async def`"):

        @wf.stage
        def sync_stage(s, ctx):
            return {}


def test_duplicate_stage_names_are_refused():
    wf = wf_with(a)
    with pytest.raises(ConfigError, match="already has a stage named 'a'"):
        wf.stage(b, name="a")


def test_an_edge_to_an_unknown_stage_names_it():
    wf = wf_with(a)
    with pytest.raises(ConfigError, match="'nowhere' is not a stage of workflow 'w'"):
        wf.then(a, "nowhere")
    with pytest.raises(ConfigError, match="'b' is not a stage"):
        wf.then(a, b)  # a function never declared as a stage


def test_an_unreachable_stage_is_named_when_the_definition_is_checked():
    wf = wf_with(a, b, c).then(a, b)
    with pytest.raises(ConfigError, match="stage 'c' of workflow 'w' is unreachable from 'a'"):
        wf.validate()


def test_a_cycle_without_a_loop_bound_is_refused_and_named():
    wf = wf_with(a, b, c).then(a, b, c)
    wf.branch(c, lambda s: "a" if s.n < 3 else "b", options=[a, b])
    with pytest.raises(ConfigError, match=re.escape("stages a -> b -> c -> a form a cycle without a bound")):
        wf.compile()


def test_the_same_cycle_declared_as_a_bounded_loop_is_accepted():
    wf = wf_with(a, b, c).then(a, b, c)
    wf.loop(c, back_to=a, while_=lambda s: s.n < 3, max_times=3, expected=1)
    assert wf.compile() is not None


def test_a_stage_with_two_ways_out_is_refused():
    wf = wf_with(a, b, c).then(a, b)
    with pytest.raises(ConfigError, match="stage 'a' already continues to b"):
        wf.then(a, c)


def test_stage_signature_must_match_fan_out():
    wf = Workflow("w", state=S)
    with pytest.raises(ConfigError, match=re.escape("stage 'x' must take (state, ctx, item)")):

        @wf.stage(fan_out=2)
        async def x(s, ctx):
            return {}


def test_a_fan_out_stage_cannot_end_in_a_branch():
    wf = Workflow("w", state=S)
    wf.stage(a)
    wf.stage(b)

    @wf.stage(fan_out=2)
    async def many(s, ctx, i):
        return {}

    wf.then(a, many)
    wf.branch(many, lambda s: "b", options=[b])
    with pytest.raises(ConfigError, match="stage 'many' fans out"):
        wf.validate()


def test_bad_loop_bounds_and_slo_are_refused():
    wf = wf_with(a, b).then(a, b)
    with pytest.raises(ConfigError, match="loop after 'b'"):
        wf.loop(b, back_to=a, while_=lambda s: True, max_times=2, expected=3)
    with pytest.raises(ConfigError, match="slo must be positive"):
        Workflow("bad", state=S, slo=0)


def test_expected_path_follows_declared_branch_and_loop_repetitions():
    wf = wf_with(a, b, c)
    wf.stage(_d, name="d")
    wf.then(a, b, c)
    wf.loop(c, back_to=b, while_=lambda s: True, max_times=3, expected=2)
    wf.then(c, "d")
    assert list(wf.expected_after("a", {})) == ["b", "c", "b", "c", "b", "c", "d"]
    # Once the loop has gone round twice, the rest of the path no longer repeats it.
    assert list(wf.expected_after("b", {"c": 2})) == ["c", "d"]


async def _d(s, ctx):
    return {}


def test_costs_turn_into_expected_seconds():
    assert Cost(seconds=0.5).expected_s(Workflow("x", state=S).speed) == 0.5
    fast = Cost(calls=2, prompt=120, output=32)
    assert fast.expected_s(Workflow("x", state=S).speed) == pytest.approx(2 * (1 + 1))
