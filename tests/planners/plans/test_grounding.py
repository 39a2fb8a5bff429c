"""Grounding a plan's literal values in the question: the question's only value of a declared form replaces a made-up one."""

from __future__ import annotations

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.grounding import ground_values, values_of_form
from sloflow.planners.plans.plan import parse_plan

EMAIL = r"^[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+[.][A-Za-z]+$"
ORDER = r"^#?W[0-9]+$"
USER = r"^[a-z]+_[a-z]+_[0-9]+$"


def _sources() -> list[PlanSource]:
    def takes(**forms: str) -> dict:
        return {"type": "object", "properties": {k: {"type": "string", "pattern": p} for k, p in forms.items()}, "required": list(forms)}

    return [
        PlanSource("find_user", "a user id by email", takes(email=EMAIL), {"type": "string", "description": "the user id"}),
        PlanSource("get_user", "a user's profile", takes(user_id=USER), {"type": "object", "properties": {"orders": {"type": "array"}}}),
        PlanSource("get_order", "an order", takes(order_id=ORDER), None),
        PlanSource("notes", "search notes", {"type": "object", "properties": {"query": {"type": "string"}}}, None, "index"),
    ]


def _plan(*steps: tuple[str, dict]) -> list[dict]:
    return [{"label": f"var{i}", "name": name, "arguments": args} for i, (name, args) in enumerate(steps, 1)] + [
        {"name": "var_result", "arguments": {"all": "$var1$"}}
    ]


def test_a_made_up_value_becomes_the_questions_only_value_of_its_form() -> None:
    question = "You are mia_garcia_4516 (mia.garcia2723@example.com). Where is order #W5490111?"
    plan = parse_plan(_plan(("find_user", {"email": "mia_garcia_4516@example.com"}), ("get_order", {"order_id": "W5490112"})))
    grounded, changes = ground_values(plan, question, _sources())
    assert grounded.calls[0].arguments == {"email": "mia.garcia2723@example.com"}
    assert grounded.calls[1].arguments == {"order_id": "#W5490111"}
    assert len(changes) == 2 and "mia_garcia_4516@example.com" in changes[0]


def test_values_the_question_gives_references_and_free_text_stay() -> None:
    question = "I am ana@example.com; order #W1 or #W2? notes on returns"
    plan = parse_plan(
        _plan(("find_user", {"email": "ANA@example.com"}), ("get_order", {"order_id": "$var1.orders$"}), ("notes", {"query": "refunds"}))
    )
    assert ground_values(plan, question, _sources()) == (plan, [])


def test_no_guess_between_two_values_or_for_a_value_another_argument_took() -> None:
    two = parse_plan(_plan(("get_order", {"order_id": "#W3"})))
    assert ground_values(two, "orders #W1 and #W2", _sources()) == (two, [])  # which one is not certain
    taken = parse_plan(_plan(("get_order", {"order_id": "#W1"}), ("get_order", {"order_id": "#W9"})))
    assert ground_values(taken, "order #W1", _sources()) == (taken, [])  # #W1 already serves var1


def test_a_value_is_found_only_as_a_whole_word() -> None:
    assert values_of_form(r"^[0-9]{5}$", "zip 19122, user ana_diaz_12345, phone 5551234567") == ["19122"]
    assert values_of_form(EMAIL, "write to (ana.diaz@example.com).") == ["ana.diaz@example.com"]
    assert values_of_form("^(unclosed$", "anything") == []


def test_a_lookup_of_what_the_question_gives_is_not_waited_for() -> None:
    question = "I am noah_ito_3850 (noah@example.com), you may know me as NoNo: my last order?"
    plan = parse_plan(_plan(("find_user", {"email": "noah@example.com"}), ("get_user", {"user_id": "$var1$"}), ("get_order", {"order_id": "$var2.orders.-1$"})))
    grounded, changes = ground_values(plan, question, _sources())
    assert [s.arguments for s in grounded.calls] == [{"email": "noah@example.com"}, {"user_id": "noah_ito_3850"}, {"order_id": "$var2.orders.-1$"}]
    assert changes == ["var2 user_id='$var1$' became 'noah_ito_3850', the question's only value of that form"]
    assert ground_values(plan, "I am noah@example.com: my last order?", _sources()) == (plan, [])  # no user id given: the lookup serves
