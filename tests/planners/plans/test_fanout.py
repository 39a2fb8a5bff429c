"""Steps that enumerate a list's items one by one fold into one step that runs per item."""

from __future__ import annotations

import json

from sloflow.planners.plans.fanout import collapse_enumerations
from sloflow.planners.plans.plan import parse_plan


def step(label: str, name: str, **arguments: object) -> dict:
    return {"name": name, "arguments": arguments, "label": label}


def test_item_by_item_steps_become_one_fan_out_step_and_references_follow() -> None:
    plan = parse_plan([
        step("var1", "order_status", order_id=7),
        step("var2", "manuals", query="$var1.items.0.sku$", k=2),
        step("var3", "manuals", query="$var1.items.1.sku$", k=2),
        step("var4", "manuals", query="$var1.items.2.sku$", k=2),
        step("var5", "reviews", query="$var4.0.text$"),
        {"name": "var_result", "arguments": {"a": "$var2$", "b": "$var3$", "c": "$var5$"}},
    ])
    folded, gone = collapse_enumerations(plan)
    assert gone == ["var3", "var4"]
    assert folded.to_nestful() == [
        step("var1", "order_status", order_id=7),
        step("var2", "manuals", query="$var1.items.sku$", k=2),
        step("var5", "reviews", query="$var2.0.text$"),
        {"name": "var_result", "arguments": {"a": "$var2$", "b": "$var2$", "c": "$var5$"}},
    ]


def test_counting_down_from_the_last_item_and_repeated_steps_fold_too() -> None:
    plan = parse_plan([
        step("var1", "customer", email="a@b.c"),
        step("var2", "order", order_id="$var1.orders.-1$"),
        step("var3", "order", order_id="$var1.orders.-2$"),
        step("var4", "customer", email="a@b.c"),  # the same call as var1
        {"name": "var_result", "arguments": {"o": "$var3$", "c": "$var4$"}},
    ])
    folded, gone = collapse_enumerations(plan)
    assert gone == ["var3", "var4"]
    assert folded.to_nestful() == [
        step("var1", "customer", email="a@b.c"),
        step("var2", "order", order_id="$var1.orders$"),
        {"name": "var_result", "arguments": {"o": "$var2$", "c": "$var1$"}},
    ]


def test_steps_that_only_look_alike_are_kept() -> None:
    kept = [
        [step("var1", "manuals", query="$var9.items.0.sku$"), step("var2", "manuals", query="$var9.items.2.sku$")],  # not 0, 1
        [step("var1", "manuals", query="$var9.items.0.sku$", k=1), step("var2", "manuals", query="$var9.items.1.sku$", k=2)],
        [step("var1", "manuals", query="$var9.rows.0.0$"), step("var2", "manuals", query="$var9.rows.1.0$")],  # index of an index
        [step("var1", "manuals", query="$var9.items.0.sku$"), step("var2", "reviews", query="$var9.items.1.sku$")],
    ]
    for steps in kept:
        plan = parse_plan([*steps, {"name": "var_result", "arguments": {"r": "$var1$"}}])
        assert collapse_enumerations(plan) == (plan, [])
