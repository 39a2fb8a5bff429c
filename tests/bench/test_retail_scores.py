"""The retail figures of `sloflow bench reaper`: evidence recall, the share of gold calls any plan could reach, and what the answers state."""

from __future__ import annotations

from sloflow.bench.reaper import evidence_recall, info_stated, reachable_share

GOLD = [
    {"name": "find_user_id_by_email", "arguments": {"email": "ana@example.com"}},
    {"name": "get_order_details", "arguments": {"order_id": "#W1"}},
    {"name": "get_order_details", "arguments": {"order_id": "#W1"}},  # the session looked it up again
]


def test_one_execution_covers_a_repeated_gold_call_unless_repeats_are_asked() -> None:
    executed = [{"name": "get_order_details", "arguments": {"order_id": "W1"}}]  # "#W1" and "W1" name one order
    assert evidence_recall(executed, GOLD) == 2 / 3
    assert evidence_recall(executed, GOLD, repeats=True) == 1 / 3


def test_a_value_neither_the_request_nor_a_reachable_output_holds_is_out_of_reach() -> None:
    trace = [
        ("find_user_id_by_name_zip", {"first_name": "Ana", "last_name": "Diaz", "zip": "10002"}, None),  # a wrong zip, said later
        ("find_user_id_by_name_zip", {"first_name": "Ana", "last_name": "Diaz", "zip": "10001"}, "ana_diaz_1"),
        ("get_user_details", {"user_id": "ana_diaz_1"}, {"orders": ["#W1"]}),
        ("get_order_details", {"order_id": "#W1"}, {"items": [{"product_id": "77"}]}),
        ("get_product_details", {"product_id": "55"}, None),  # listed by the store, not in any order
    ]
    assert reachable_share("I am Ana Diaz, zip 10001.", trace, {"Lamp": "55"}) == 4 / 5


def test_an_answer_states_a_value_only_as_a_whole_number_in_any_spelling() -> None:
    assert info_stated("The total is $1,288.65 and it ships in 20 hours.", ["1288.65", "20 hours"]) == 1.0
    assert info_stated("There are 10 options.", ["10"]) == 1.0
    assert info_stated("It costs $10.50, or 100 points.", ["10"]) == 0.0  # neither is the number 10
    assert info_stated("Prices: 54.04 and 41.6.", ["54.04", "41.64"]) == 0.5
