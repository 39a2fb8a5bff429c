"""The retail figures of `sloflow bench reaper`: evidence recall and the share of gold calls any plan could reach."""

from __future__ import annotations

from sloflow.bench.reaper import evidence_recall, reachable_share

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
