"""An index the question speaks of, left out of the plan, joins it as a search of the question."""

from __future__ import annotations

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.coverage import cover_asked_indexes
from sloflow.planners.plans.plan import parse_plan

SEARCH = {"type": "object", "properties": {"query": {"type": "string"}, "k": {"type": "integer"}}, "required": ["query"]}
SOURCES = [
    PlanSource("get_order", "an order's details", {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}),
    PlanSource("policy", "search the store's return, exchange and cancellation policy", SEARCH, None, "index"),
    PlanSource("manuals", "search the product manuals", SEARCH, None, "index"),
]
PLAN = parse_plan(
    [{"label": "var1", "name": "get_order", "arguments": {"order_id": "#W1001"}}, {"name": "var_result", "arguments": {"order": "$var1$"}}]
)


def test_an_index_the_question_speaks_of_is_searched_with_the_question() -> None:
    question = "What is the status of order #W1001 and can I still return it?"
    covered, changes = cover_asked_indexes(PLAN, question, SOURCES)
    assert [s.name for s in covered.calls] == ["get_order", "policy"]
    assert covered.calls[1].label == "var2" and covered.calls[1].arguments["query"] == question
    assert covered.result is not None and covered.result.arguments == {"order": "$var1$", "policy": "$var2$"}
    assert len(changes) == 1 and "policy" in changes[0]


def test_indexes_the_question_does_not_speak_of_or_already_called_are_left_alone() -> None:
    assert cover_asked_indexes(PLAN, "Where is order #W1001? Search it please.", SOURCES) == (PLAN, [])
    called = parse_plan(
        [{"label": "var1", "name": "policy", "arguments": {"query": "returns"}}, {"name": "var_result", "arguments": {"p": "$var1$"}}]
    )
    assert cover_asked_indexes(called, "can I return order #W1001?", SOURCES) == (called, [])
