"""Citations read back from an answer, a refused call worded as the call's fault, and evidence kept short."""

from __future__ import annotations

import json

from sloflow.llm.types import Message
from sloflow.planners.plans.evidence import Evidence, answer_messages, citations, compact

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


PRODUCT = {
    "name": "Mechanical Keyboard",
    "product_id": "1656367028",
    "variants": {
        f"{n}": {"item_id": f"{n}", "options": {"switch type": switch, "backlight": light, "size": size}, "available": True, "price": 200 + n}
        for n, (switch, light, size) in enumerate(
            [("linear", "none", "80%"), ("tactile", "white", "60%"), ("clicky", "RGB", "full size"), ("linear", "RGB", "60%"), ("tactile", "none", "full size")]
        )
    },
}


def test_an_output_over_its_share_keeps_the_entries_the_question_speaks_of() -> None:
    text = compact(PRODUCT, 260, "Is there one with clicky switches and RGB backlight?")
    kept = json.loads(text)
    # The short values stay, the matching variant stays, and a marker counts what went.
    assert kept["name"] == "Mechanical Keyboard" and kept["product_id"] == "1656367028"
    assert "2" in kept["variants"] and kept["variants"]["…"] in ("… 3 more", "… 4 more")
    assert len(text) <= 260


def test_a_list_keeps_the_item_asked_about_and_one_count_of_the_rest() -> None:
    names = ["kettle", "toaster", "blender", "mixer", "grill", "fryer"]
    order = {"more": "a field, not a marker", "items": [{"name": name, "notes": "x" * 60} for name in names]}
    kept = json.loads(compact(order, 200, "Is the grill in my order?"))
    assert kept["more"] == "a field, not a marker"
    assert kept["items"][0]["name"] == "grill" and kept["items"][-1] == "… 5 more"


def test_without_a_question_or_within_its_share_an_output_is_its_json() -> None:
    assert compact(PRODUCT, 10_000, "clicky") == json.dumps(PRODUCT, separators=(",", ":"))
    assert compact(PRODUCT, 100).endswith("...") and len(compact(PRODUCT, 100)) == 100


def test_an_answer_that_continues_the_planner_conversation_does_not_repeat_the_question() -> None:
    question = "Is order #W1 delivered?"
    evidence = [Evidence("var1", "get_order_details", {"order_id": "#W1"}, {"status": "delivered"}, None)]
    planned = [Message(role="system", content="plan"), Message(role="user", content=f"Question: {question}"), Message(role="assistant", content="[]")]
    last = answer_messages(question, evidence, planned)[-1].content
    assert '"status":"delivered"' in last and question not in last and last.endswith("Answer the question asked above.")
    alone = answer_messages(question, evidence)  # no conversation: the question is asked here
    assert alone[-1].content.endswith(f"Question: {question}")


def test_a_header_names_the_question_and_counts_a_long_per_item_list_instead_of_writing_them_again() -> None:
    question = "Which of my orders can I still return?"
    search = Evidence("var2", "policy", {"query": question, "k": 3}, [{"doc_id": "policy", "text": "Delivered orders can be returned."}])
    orders = Evidence("var3", "get_order", {"order_id": ["#W1", "#W2", "#W3", "#W4", "#W5"]}, [{"order_id": f"#W{n}"} for n in range(1, 6)])
    prompt = answer_messages(question, [search, orders, ORDER])[-1].content
    assert "[var2] policy(query=(the question), k=3)" in prompt
    assert '[var3] get_order(order_id=[5 values: "#W1", "#W2", ...])' in prompt and "#W5" in prompt  # the ids are in the output
    assert '[var1] get_order(order_id="#W1001")' in prompt  # a short argument as it is
