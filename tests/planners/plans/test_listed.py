"""A list of ids a step returns, which no step reads, is read by the one source that takes that id."""

from __future__ import annotations

from typing import Any

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.execute import execute_plan
from sloflow.planners.plans.listed import read_listed_records
from sloflow.planners.plans.plan import parse_plan


def _takes(name: str, argument: str, output: dict[str, Any] | None = None) -> PlanSource:
    return PlanSource(name, f"{name} by {argument}", {"type": "object", "properties": {argument: {"type": "string"}}, "required": [argument]}, output)


ITEM = {"type": "object", "properties": {"product_id": {"type": "string"}, "price": {"type": "number"}}}
PROFILE = {"type": "object", "properties": {"name": {"type": "string"}, "orders": {"type": "array", "items": {"type": "string"}, "description": "order ids"}}}
ORDER = {"type": "object", "properties": {"status": {"type": "string"}, "items": {"type": "array", "items": ITEM}}}
SOURCES = [_takes("get_user", "user_id", PROFILE), _takes("get_order", "order_id", ORDER), _takes("get_product", "product_id")]
READS_PROFILE = parse_plan(
    [{"label": "var1", "name": "get_user", "arguments": {"user_id": "ana_7"}}, {"name": "var_result", "arguments": {"var1": "$var1$"}}]
)


def test_the_records_a_profile_lists_are_read_once_per_id() -> None:
    completed, changes = read_listed_records(READS_PROFILE, SOURCES)
    assert [(s.label, s.name, s.arguments) for s in completed.calls] == [
        ("var1", "get_user", {"user_id": "ana_7"}),
        ("var2", "get_order", {"order_id": "$var1.orders$"}),
    ]
    assert completed.result is not None and completed.result.arguments == {"var1": "$var1$", "var2": "$var2$"}
    assert len(changes) == 1 and "get_order" in changes[0]


async def test_the_added_step_runs_for_every_listed_id() -> None:
    completed, _ = read_listed_records(READS_PROFILE, SOURCES)
    seen: list[tuple[str, dict[str, Any]]] = []

    async def call(name: str, args: dict[str, Any]) -> Any:
        seen.append((name, args))
        return {"name": "Ana", "orders": ["#W1", "#W2"]} if name == "get_user" else {"status": "delivered", "items": []}

    run = await execute_plan(completed, call, sources=SOURCES)
    assert [a["order_id"] for n, a in seen if n == "get_order"] == ["#W1", "#W2"]
    assert run.result["var2"] == [{"status": "delivered", "items": []}] * 2


def test_left_alone_when_the_plan_reads_that_source_already() -> None:
    reads_one = parse_plan(
        [
            {"label": "var1", "name": "get_user", "arguments": {"user_id": "ana_7"}},
            {"label": "var2", "name": "get_order", "arguments": {"order_id": "#W1"}},
            {"name": "var_result", "arguments": {"var2": "$var2$"}},
        ]
    )
    assert read_listed_records(reads_one, SOURCES) == (reads_one, [])


def test_lists_of_objects_and_ids_two_sources_take_are_not_followed() -> None:
    reads_order = parse_plan([{"label": "var1", "name": "get_order", "arguments": {"order_id": "#W1"}}, {"name": "var_result", "arguments": {}}])
    assert read_listed_records(reads_order, SOURCES) == (reads_order, [])  # items are objects
    twins = [*SOURCES, _takes("get_order_status", "order_id")]
    assert read_listed_records(READS_PROFILE, twins) == (READS_PROFILE, [])  # which of the two reads an order is the planner's call
