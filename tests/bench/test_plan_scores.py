"""Plan scores against hand-made gold plans."""

from __future__ import annotations

import pytest

from sloflow.bench.plan_scores import argument_f1, exact_match, function_f1, same_sequence

GOLD = [
    {"name": "find_user", "arguments": {"zip": "19122", "name": "Yusuf"}, "label": "var1"},
    {"name": "get_orders", "arguments": {"user_id": "$var1.id$"}, "label": "var2"},
    {"name": "var_result", "arguments": {"orders": "$var2$"}},
]


def test_an_equal_plan_with_other_labels_and_spellings_matches() -> None:
    pred = [
        {"name": "find_user", "arguments": {"name": " yusuf ", "zip": 19122}, "label": "a"},
        {"name": "get_orders", "arguments": {"user_id": "$a.id$"}, "label": "b"},
        {"name": "var_result", "arguments": {"something": "$b$"}},  # var_result keys are free
    ]
    assert exact_match(pred, GOLD) and same_sequence(pred, GOLD)
    assert function_f1(pred, GOLD) == argument_f1(pred, GOLD) == 1.0


def test_partial_plans_score_partially() -> None:
    pred = [{"name": "find_user", "arguments": {"zip": "19122"}, "label": "var1"}, {"name": "get_weather", "arguments": {}, "label": "var2"}]
    assert function_f1(pred, GOLD) == pytest.approx(0.5)  # P = 1/2, R = 1/2
    assert argument_f1(pred, GOLD) == pytest.approx(2 * (1 / 1) * (1 / 3) / (1 + 1 / 3))
    assert not same_sequence(pred, GOLD) and not exact_match(pred, GOLD)
    swapped_ref = [dict(GOLD[0]), {"name": "get_orders", "arguments": {"user_id": "$var2.id$"}, "label": "var2"}]
    assert same_sequence(swapped_ref, GOLD) and not exact_match(swapped_ref, GOLD)
    assert function_f1([], GOLD) == 0.0 and function_f1([], []) == 1.0
