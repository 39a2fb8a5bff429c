"""A trace of calls becomes a reusable plan: values passed along become references, repeats one per-item step."""

from __future__ import annotations

from sloflow.planners.plans.from_calls import plan_from_calls

USER = {"name": "Ana", "orders": ["#W1001", "#W1002"]}
ORDERS = {
    "#W1001": {"status": "delivered", "items": [{"product_id": "p-100", "qty": 1}]},
    "#W1002": {"status": "pending", "items": [{"product_id": "p-200", "qty": 2}, {"product_id": "p-300", "qty": 1}]},
}


def test_values_from_earlier_outputs_become_references_and_repeats_merge() -> None:
    trace = [
        ("find_user", {"email": "ana@example.com"}, "ana_1"),
        ("get_user", {"user_id": "ana_1"}, USER),
        ("get_order", {"order_id": "#W1001"}, ORDERS["#W1001"]),
        ("get_order", {"order_id": "#W1002"}, ORDERS["#W1002"]),
        ("get_product", {"product_id": "p-300"}, {"name": "lamp"}),
    ]
    plan = plan_from_calls(trace)
    assert plan.to_nestful() == [
        {"label": "var1", "name": "find_user", "arguments": {"email": "ana@example.com"}},
        {"label": "var2", "name": "get_user", "arguments": {"user_id": "$var1$"}},
        # Both orders were looked up: one step over every order of the user.
        {"label": "var3", "name": "get_order", "arguments": {"order_id": "$var2.orders$"}},
        # The trace looked up one product of the second order; the plan looks up every item's.
        {"label": "var4", "name": "get_product", "arguments": {"product_id": "$var3.items.product_id$"}},
        {"name": "var_result", "arguments": {"var1": "$var1$", "var2": "$var2$", "var3": "$var3$", "var4": "$var4$"}},
    ]


def test_values_no_output_holds_and_short_values_stay_literal() -> None:
    trace = [
        ("get_order", {"order_id": "#W1002", "verbose": True}, ORDERS["#W1002"]),
        ("get_product", {"product_id": "p-999", "qty": 2}, None),  # qty 2 is in the order, but too short to tell
    ]
    steps = plan_from_calls(trace).to_nestful()
    assert steps[1]["arguments"] == {"product_id": "p-999", "qty": 2}
