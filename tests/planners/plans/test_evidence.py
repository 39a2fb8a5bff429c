"""Citations read back from an answer, and a refused call worded as the call's fault."""

from __future__ import annotations

from sloflow.planners.plans.evidence import Evidence, answer_messages, citations

ORDER = Evidence("var1", "get_order", {"order_id": "#W1001"}, {"order_id": "#W1001", "status": "delivered", "items": [{"price": 102.35}]})
POLICY = Evidence("var2", "policy", {"query": "returns"}, [{"doc_id": "policy", "text": "Delivered items may be returned within 30 days of delivery, unopened."}])
REFUSED = Evidence("var3", "find_user_id_by_email", {"email": "$var1.user_id$"}, error="email must look like ana@example.com")


def test_labels_the_answer_cites_including_a_field_of_one_and_only_known_ones() -> None:
    assert citations("It is delivered [var1.status] and returnable [var2]; see [var9].", [ORDER, POLICY]) == ["var1", "var2"]


def test_without_brackets_the_evidence_whose_short_values_the_answer_quotes() -> None:
    # "delivered" is var1's status; the policy passage is too long to count as quoted.
    assert citations("The order is delivered, and it can be returned.", [ORDER, POLICY, REFUSED]) == ["var1"]
    assert citations("I cannot tell.", [ORDER, POLICY]) == []


def test_a_refused_call_is_shown_as_not_answered_not_as_a_fact() -> None:
    prompt = answer_messages("Can I return #W1001?", [ORDER, REFUSED])[-1].content
    assert "[var3] find_user_id_by_email" in prompt and "not answered (the call was refused" in prompt
