"""Planner and repair prompts: sources with their arguments and outputs, examples, the validator's problems."""

from __future__ import annotations

import json

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.plan import PlanExample, parse_plan
from sloflow.planners.plans.prompts import BUILTIN_EXAMPLES, describe_source, planner_prompt, repair_prompt
from sloflow.planners.plans.validate import validate_plan


def test_the_planner_prompt_lists_every_source_compactly_and_asks_for_the_question(shop_sources: list[PlanSource]) -> None:
    system, user = planner_prompt("  Is order 7 shipped?  ", shop_sources)
    assert user.role == "user" and user.content == "Question: Is order 7 shipped?"
    assert system.role == "system"
    for source in shop_sources:
        assert describe_source(source) in system.content
    assert describe_source(shop_sources[3]) == (
        "- order_status: status of one order. Arguments: order_id (integer, required); verbose (boolean); tags ([string])."
        " Output: {status: string, items: [{sku: string}]}."
    )
    assert "var_result" in system.content and '"$var1.field$"' in system.content


def one(name: str) -> dict:
    return {"type": "object", "properties": {name: {"type": "string"}}, "required": [name]}


def test_built_in_examples_are_valid_plans_for_the_sources_they_describe() -> None:
    search = {"type": "object", "properties": {"query": {"type": "string"}, "k": {"type": "integer"}}, "required": ["query"]}
    their_sources = [
        PlanSource("sql:store", "orders", {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]}),
        PlanSource("manuals", "manuals", search),
        PlanSource("reviews", "reviews", search),
        PlanSource("get_customer", "customer", one("email"), {"type": "object", "properties": {"id": {}, "name": {}, "orders": {}}}),
        PlanSource("get_order", "order", one("order_id"), {"type": "object", "properties": {"status": {}, "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {}, "name": {}}}}}}),
        PlanSource("get_item", "item", one("sku"), {"type": "object", "properties": {"name": {}, "colours": {}, "stock": {}}}),
    ]
    assert len(BUILTIN_EXAMPLES) == 4
    for _, plan in BUILTIN_EXAMPLES:
        assert validate_plan(plan, their_sources).problems == []


def test_examples_from_memory_replace_the_built_in_ones(shop_sources: list[PlanSource]) -> None:
    remembered = parse_plan(
        [{"name": "reviews", "arguments": {"query": "kettle noise"}, "label": "var1"}, {"name": "var_result", "arguments": {"r": "$var1$"}}]
    )
    built_in = planner_prompt("q", shop_sources)[0].content
    with_memory = planner_prompt("q", shop_sources, [PlanExample("is the kettle loud?", remembered, 0.8)])[0].content
    assert "Question: What does the manual say about descaling" in built_in
    assert "descaling" not in with_memory
    assert f"Question: is the kettle loud?\nPlan: {remembered.to_json()}" in with_memory


def test_the_repair_prompt_continues_the_planner_conversation_with_the_problems(shop_sources: list[PlanSource]) -> None:
    previous = [{"label": "var1", "name": "orderz", "arguments": {"order_id": 7}}, {"name": "var_result", "arguments": {"s": "$var1$"}}]
    check = validate_plan(previous, shop_sources)
    assert check.plan is not None
    system, question, plan, problems = repair_prompt("Is order 7 shipped?", shop_sources, check.plan, check.problems)
    assert [system, question] == planner_prompt("Is order 7 shipped?", shop_sources)  # one shared prefix for plan and repair
    assert plan.role == "assistant" and plan.content == json.dumps(previous)
    assert problems.role == "user" and "- step var1 calls unknown source 'orderz'" in problems.content
    assert problems.content.endswith("Write the whole corrected plan as a JSON list of steps.")
    raw = repair_prompt("q", shop_sources, "  [not json  ", ["the plan is not valid JSON: Expecting value at character 1"])
    assert raw[2].content == "[not json" and "- the plan is not valid JSON" in raw[3].content
