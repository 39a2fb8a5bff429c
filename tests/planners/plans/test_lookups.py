"""A lookup given the very value it looks up is dropped; its users read that value where the plan holds it."""

from __future__ import annotations

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.lookups import drop_held_lookups
from sloflow.planners.plans.plan import parse_plan


def _sources() -> list[PlanSource]:
    def takes(*names: str) -> dict:
        return {"type": "object", "properties": {n: {"type": "string"} for n in names}, "required": list(names)}

    order = {"type": "object", "properties": {"user_id": {"type": "string"}, "status": {"type": "string"}}}
    return [
        PlanSource("get_order", "an order", takes("order_id"), order),
        PlanSource("find_user_id_by_email", "a user id by email", takes("email"), {"type": "string", "description": "the user id"}),
        PlanSource("get_user", "a user's profile", takes("user_id"), {"type": "object", "properties": {"orders": {"type": "array"}}}),
    ]


def test_a_lookup_of_a_held_value_goes_and_its_users_read_the_held_value() -> None:
    plan = parse_plan(
        [
            {"label": "var1", "name": "get_order", "arguments": {"order_id": "#W1001"}},
            {"label": "var2", "name": "find_user_id_by_email", "arguments": {"email": "$var1.user_id$"}},
            {"label": "var3", "name": "get_user", "arguments": {"user_id": "$var2$"}},
            {"name": "var_result", "arguments": {"order": "$var1$", "user": "$var2$", "profile": "$var3$"}},
        ]
    )
    tidied, changes = drop_held_lookups(plan, _sources())
    assert [s.name for s in tidied.calls] == ["get_order", "get_user"]
    assert tidied.calls[1].arguments == {"user_id": "$var1.user_id$"}
    assert tidied.result is not None and tidied.result.arguments["user"] == "$var1.user_id$"
    assert len(changes) == 1 and "var2" in changes[0] and "$var1.user_id$" in changes[0]


def test_a_lookup_given_another_value_stays() -> None:
    plan = parse_plan(
        [
            {"label": "var1", "name": "find_user_id_by_email", "arguments": {"email": "ana@example.com"}},
            {"label": "var2", "name": "get_user", "arguments": {"user_id": "$var1$"}},
            {"label": "var3", "name": "find_user_id_by_email", "arguments": {"email": "$var2.orders$"}},
            {"name": "var_result", "arguments": {"user": "$var2$"}},
        ]
    )
    assert drop_held_lookups(plan, _sources()) == (plan, [])
