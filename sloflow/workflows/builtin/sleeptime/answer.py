"""The `sleeptime` workflow: a question about a context, answered with its learned context when current.

    read (context, and its learned context if ready for the current version) -> answer (one call)

With a learned context the prompt asks for a short answer leaning on the prepared notes (only
`Answer: <result>` when the question is one the learn pass already solved), so the test-time
output is small; without one (not learned yet, failed, or `use_learned=false`) it asks
for a step-by-step answer, the baseline. The output says which (`used_learned`) and why.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sloflow.errors import DeadlineExceeded
from sloflow.workflows.budget import Cost
from sloflow.workflows.builtin.sleeptime.learn import CONTEXT_ID_PATTERN, contexts_tool
from sloflow.workflows.builtin.sleeptime.prompts import SHORT_ANSWER_TOKENS, STEP_BY_STEP_TOKENS, answer_request, has_answer_line
from sloflow.workflows.contexts import LearnedContext
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.outcomes import count_outcome
from sloflow.workflows.registry import register


class SleeptimeState(BaseModel):
    """Input (context, question, options) and what the stages fill in."""

    context_id: str = Field(pattern=CONTEXT_ID_PATTERN, description="a context of the caller (POST /v1/contexts)")
    question: str = Field(min_length=1, max_length=4000)
    use_learned: bool = Field(True, description="use the learned context when it is ready; false answers from the raw context (the baseline)")
    max_tokens: int | None = Field(
        None, ge=8, le=2048, description=f"answer tokens, at most; default {SHORT_ANSWER_TOKENS} with a learned context, {STEP_BY_STEP_TOKENS} without"
    )

    context_version: int = 0
    learned: dict[str, Any] | None = Field(None, description="the learned context used")
    used_learned: bool = False
    answer: str = ""
    output_tokens: int = 0
    notes: list[str] = Field(default_factory=list)


sleeptime = Workflow(
    "sleeptime",
    state=SleeptimeState,
    slo=30.0,
    description="question about a context -> a short answer leaning on its learned context (precomputed on idle capacity), or step by step without",
)


@sleeptime.admit
def _context_exists(s: SleeptimeState, tools: Any) -> None:
    """A question about a context the tenant does not have is refused at submission (404)."""
    contexts_tool(tools).get(s.context_id)


@sleeptime.stage(cost=Cost(seconds=0.01))
async def read(s: SleeptimeState, ctx: Any) -> dict[str, Any]:
    """The context at its current version, and its learned context if that version's is ready."""
    contexts = contexts_tool(ctx.tools)
    context = contexts.get(s.context_id)
    contexts.asked(s.context_id)
    learned = context.learned
    ready = learned is not None and learned.status == "ready" and learned.version == context.version and learned.content is not None
    notes = list(s.notes)
    if not s.use_learned:
        notes.append("read: use_learned=false; answered from the raw context")
    elif not ready:
        state = "none" if learned is None else learned.status
        notes.append(f"read: no learned context for version {context.version} yet ({state}); answered from the raw context, step by step")
    use = s.use_learned and ready
    return {
        "context_version": context.version,
        "learned": learned.content.to_dict() if use and learned and learned.content else None,
        "used_learned": use,
        "notes": notes,
    }


@sleeptime.stage(cost=Cost(calls=1, prompt=900, output=SHORT_ANSWER_TOKENS))
async def answer(s: SleeptimeState, ctx: Any) -> dict[str, Any]:
    """One call: short with the learned context, step by step without."""
    context = contexts_tool(ctx.tools).get(s.context_id)
    learned = LearnedContext(**s.learned) if s.learned is not None else None
    notes = list(s.notes)
    if learned is not None and context.version != s.context_version:  # changed since `read`: its learned context is old
        learned = None
        notes.append(f"answer: the context changed to version {context.version} meanwhile; its old learned context was not used")
    request = answer_request(context.text, s.question, learned, max_tokens=s.max_tokens)
    used = {"used_learned": learned is not None, "learned": s.learned if learned is not None else None, "context_version": context.version}
    try:
        out = await ctx.llm.generate(request)
    except DeadlineExceeded:
        return {**used, "notes": [*notes, "answer: the deadline passed before the answer was written"]}
    text, tokens = out.text, out.completion_tokens
    if learned is not None and s.max_tokens is None and out.finish_reason == "length" and not has_answer_line(text):
        # The model worked step by step after all and ran out of the short budget before its
        # result: half a working answers nothing, so it goes on (from its prompt cache) within the
        # baseline's budget. The tokens count as this answer's.
        more = request.model_copy(update={"answer_prefix": text, "max_tokens": STEP_BY_STEP_TOKENS - tokens})
        try:
            rest = await ctx.llm.generate(more)
            text, tokens = text + rest.text, tokens + rest.completion_tokens
            notes.append(f"answer: the short answer ran out of its {request.max_tokens} tokens before its result; it went on to {tokens}")
        except DeadlineExceeded:
            notes.append("answer: the short answer ran out of tokens before its result, and the deadline passed before it could go on")
    count_outcome("sleeptime", "with_learned" if learned is not None else "without_learned")
    return {**used, "answer": text.strip(), "output_tokens": tokens, "notes": notes}


sleeptime.then(read, answer)
register(sleeptime)
