"""A plan being generated is stopped where the rest would only cost decode time."""

from __future__ import annotations

import json

from sloflow.planners.plans.closing import close_at_repeat, close_at_result, close_plan
from sloflow.planners.plans.fanout import collapse_enumerations
from sloflow.planners.plans.plan import parse_plan


def test_a_plan_being_written_is_closed_at_its_first_repeat() -> None:
    first = '[{"label": "var1", "name": "get_order", "arguments": {"order_id": "#A1"}}, '
    second = '{"label": "var2", "name": "get_item", "arguments": {"sku": "$var1.items.0.sku$"}}'
    assert close_at_repeat(first) is None and close_at_repeat(first + second[:30]) is None
    assert close_at_repeat(first + second + ", ") is None  # a different step: go on
    third = ', {"label": "var3", "name": "get_item", "arguments": {"sku": "$var1.items.1.sku$"}}'
    closed = close_at_repeat(first + second + third)
    assert closed is not None and [s["label"] for s in json.loads(closed)] == ["var1", "var2", "var3"]
    assert [s.label for s in collapse_enumerations(parse_plan(json.loads(closed)))[0].steps] == ["var1", "var2"]
    again = ', {"label": "var3", "name": "get_order", "arguments": {"order_id": "#A1"}}'  # an exact repeat
    assert close_at_repeat(first + second + again) is not None


def test_a_plan_being_written_is_closed_when_its_var_result_begins() -> None:
    calls = '[{"label": "var1", "name": "get_order", "arguments": {"order_id": "#A1"}}, {"label": "var2", "name": "get_item", "arguments": {"sku": "$var1.items.sku$"}}'
    assert close_at_result(calls) is None and close_at_result(calls + ", ") is None  # the calls may go on
    opened = calls + ', {"name": "var_result", "argu'
    closed = close_plan(opened)
    assert closed is not None
    plan = parse_plan(json.loads(closed))
    assert [s.label for s in plan.calls] == ["var1", "var2"]
    assert plan.result is not None and plan.result.arguments == {"var1": "$var1$", "var2": "$var2$"}
    assert close_at_result('[{"name": "var_result", "arguments": {}}') is None  # no call to answer from
