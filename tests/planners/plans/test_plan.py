"""Plans in the NESTFUL convention: parsing model output, the gold form, the default plan."""

from __future__ import annotations

from typing import Any

import pytest

from sloflow.errors import InvalidRequest
from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.default import default_plan
from sloflow.planners.plans.plan import RESULT, parse_plan
from sloflow.planners.plans.validate import validate_plan


def test_every_gold_plan_parses_and_dumps_back_to_the_same_json(nestful: tuple[list[dict[str, Any]], Any]) -> None:
    data, _ = nestful
    for record in data:
        plan = parse_plan(record)  # a whole record: {"input": ..., "output": [...]}
        assert plan.to_nestful() == record["output"]
        assert plan.result is not None and plan.result.label == RESULT and len(plan.calls) == len(plan.steps) - 1


def test_model_output_with_a_fence_and_trailing_prose_parses() -> None:
    steps = '[{"name": "manuals", "arguments": {"query": "x"}, "label": "var1"}, {"name": "var_result", "arguments": {"m": "$var1$"}}]'
    text = f"Here is the plan:\n```json\n{steps}\n```\nDone."
    plan = parse_plan(text)
    assert [s.name for s in plan.steps] == ["manuals", RESULT]
    assert parse_plan('[{"name": "var_result", "arguments": {}}] and then some words').steps[0].is_result
    assert parse_plan({"steps": plan.to_nestful()}) == plan


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("no json here", "no list of steps"),
        ('[{"name": "a", "arguments": {"q": 1}, "label": "var1"', "not valid JSON"),
        ('{"name": "a"}', "must be a JSON list of steps"),
        ('[{"name": "a", "arguments": "q", "label": "var1"}]', "step 1, field 'arguments'"),
        ('[{"arguments": {}, "label": "var1"}]', "step 1, field 'name'"),
    ],
)
def test_malformed_output_raises_a_message_that_says_where(raw: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_plan(raw)


def test_the_default_plan_searches_every_index_with_the_question(shop_sources: list[PlanSource]) -> None:
    plan = default_plan("how do I descale the kettle?", shop_sources, k=4)
    assert [(s.name, s.arguments, s.label) for s in plan.calls] == [
        ("manuals", {"query": "how do I descale the kettle?", "k": 4}, "var1"),
        ("reviews", {"query": "how do I descale the kettle?", "k": 4}, "var2"),
    ]
    assert plan.result is not None and plan.result.arguments == {"manuals": "$var1$", "reviews": "$var2$"}
    assert validate_plan(plan, shop_sources).ok


def test_without_indexes_the_default_plan_is_an_empty_result() -> None:
    plan = default_plan("q", [PlanSource("f", "a function", {"type": "object"})])
    assert plan.to_nestful() == [{"name": RESULT, "arguments": {}}]
