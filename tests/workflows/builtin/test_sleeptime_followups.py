"""Follow-up questions about a context (the multi-query setting of `sloflow bench sleeptime`)."""

from __future__ import annotations

from sloflow.llm.client import DirectClient
from sloflow.llm.embedded import EmbeddedBackend
from sloflow.workflows.builtin.sleeptime.followups import ask_followups
from sloflow.workflows.builtin.sleeptime.prompts import read_questions

CONTEXT = "Ann has 3 bags. Each bag holds 4 apples. She gives 2 apples to Bob."
ASKED = "How many apples does Ann have left?"


def test_the_reader_keeps_new_distinct_questions_only() -> None:
    output = (
        "Q: How many bags does Ann have?\n"
        "2. Q: how many apples does Ann have left?\n"  # the question asked, in other words
        "- How many apples are in each bag?\n"
        "Q: How many bags does Ann have?\n"  # again
        "Q: What is the total\n"  # cut off: not a question
        "Q1: How many apples does Bob get?\n"
    )
    assert read_questions(output, 5, besides=ASKED) == ["How many bags does Ann have?", "How many apples are in each bag?", "How many apples does Bob get?"]
    assert read_questions(output, 1, besides=ASKED) == ["How many bags does Ann have?"]
    assert read_questions("no questions here.", 3, besides=ASKED) == []


class Recording(DirectClient):
    """The in-process client, recording each call's context."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        super().__init__(backend)
        self.contexts: list = []

    async def generate(self, request, ctx):  # type: ignore[no-untyped-def]
        self.contexts.append(ctx)
        return await super().generate(request, ctx)


async def test_follow_ups_come_from_one_background_call_with_the_embedded_model(small_llm: EmbeddedBackend) -> None:
    client = Recording(small_llm)
    questions, tokens = await ask_followups(client, CONTEXT, ASKED, 3, run_id="t", tenant="team-a")
    assert len(questions) <= 3 and tokens > 0
    assert all(q.endswith("?") and q.lower() != ASKED.lower() for q in questions)
    assert len({q.lower() for q in questions}) == len(questions)
    (ctx,) = client.contexts
    assert ctx.deadline is None and ctx.priority == "background" and ctx.tenant == "team-a"
