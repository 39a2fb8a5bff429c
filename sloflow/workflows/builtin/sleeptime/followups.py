"""Follow-up questions about a context: the paper's multi-query setting, where several questions share one context.

The model writes them as a background-class call (no deadline: idle capacity only), from the raw
context and the question already asked, never from the learned context, so they are new questions
rather than the learn pass's anticipated ones read back.
"""

from __future__ import annotations

from sloflow.llm.client import CallContext, LLMClient
from sloflow.llm.types import GenerateRequest, Message
from sloflow.workflows.builtin.sleeptime.prompts import TOKENS_PER_QUESTION, read_questions

FOLLOWUPS = """\
Here is a context and a question someone asked about it. Write {n} other questions a reader could
ask next about the same context. Each must be new (not the question given), answerable from the
context alone, and have a single number as its answer. One question per line, exactly:
Q: the question"""


def followup_messages(text: str, asked: str, n: int) -> list[Message]:
    """The prompt asking for `n` follow-up questions about `text` after `asked`."""
    return [
        Message(role="system", content=FOLLOWUPS.format(n=n)),
        Message(role="user", content=f"Context:\n{text}\n\nQuestion asked: {asked}"),
    ]


async def ask_followups(llm: LLMClient, text: str, asked: str, n: int, *, run_id: str, tenant: str | None = None) -> tuple[list[str], int]:
    """(up to `n` follow-up questions, generated tokens): one background-class call."""
    request = GenerateRequest(messages=followup_messages(text, asked, n), max_tokens=TOKENS_PER_QUESTION * n + 16, temperature=0.0)
    ctx = CallContext(run_id=run_id, workflow="sleeptime.followups", stage="followups", tenant=tenant)
    out = await llm.generate(request, ctx)
    return read_questions(out.text, n, besides=asked), out.completion_tokens
