"""The `sleeptime.learn` workflow: one context version -> its learned context, on idle capacity.

    read -> derive (summary, facts: one call) -> anticipate (questions with worked answers: one call) -> save

It has no deadline, so its calls are background calls: a worker serves them only when no deadline
call waits, and a deadline call that arrives while one runs preempts it (the generation stops at
its next token and starts over later; see `sloflow.scheduler.live.worker`). Each call is also
bounded by `max_tokens` (default `LEARN_TOKENS`), which bounds the work a preemption throws away.
The learned context is saved only if the context is still at the version read: a pass that a
newer version overtook saves nothing, so an old version's learned context is never used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from sloflow.errors import NotFound
from sloflow.llm.types import GenerateRequest
from sloflow.workflows.budget import Cost
from sloflow.workflows.builtin.sleeptime.prompts import anticipate_messages, derive_messages, read_derived, read_questions
from sloflow.workflows.contexts import LearnedContext
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.registry import register

LEARN_TOKENS = 384  # per learn call: about 12 s of the 1.5B model on 2 cores
CONTEXT_ID_PATTERN = r"^[0-9a-f]{32}$"


class LearnState(BaseModel):
    """Input (the context version to learn, bounds) and what the stages fill in."""

    context_id: str = Field(pattern=CONTEXT_ID_PATTERN, description="a context of the caller (POST /v1/contexts)")
    version: int = Field(ge=1, description="the version to learn; a pass for an older version saves nothing")
    max_tokens: int = Field(LEARN_TOKENS, ge=16, le=2048, description="generated tokens per learn call, at most")
    questions_n: int = Field(5, ge=1, le=10, description="questions to anticipate")

    superseded: bool = False
    summary: str = ""
    facts: list[str] = Field(default_factory=list)
    questions: list[dict[str, str]] = Field(default_factory=list)
    learn_tokens: int = 0
    saved: bool = False
    notes: list[str] = Field(default_factory=list)


learn = Workflow(
    "sleeptime.learn",
    state=LearnState,
    slo=None,
    description="context version -> learned context (summary, derived facts, anticipated questions with worked answers), on idle capacity",
)


def contexts_tool(tools: Mapping[str, Any]) -> Any:
    """The run tool `contexts` (the tenant's `TenantContexts`); `NotFound` on a server that keeps none."""
    found = tools.get("contexts")
    if found is None:
        raise NotFound("this server keeps no contexts (its runtime binds no `contexts` tool)")
    return found


@learn.admit
def _context_exists(s: LearnState, tools: Mapping[str, Any]) -> None:
    """A pass for a context the tenant does not have is refused at submission (404)."""
    contexts_tool(tools).get(s.context_id)


async def _generate(ctx: Any, messages: list[Any], max_tokens: int) -> tuple[str, int]:
    out = await ctx.llm.generate(GenerateRequest(messages=messages, max_tokens=max_tokens, temperature=0.0))
    return out.text, out.completion_tokens


@learn.stage(cost=Cost(seconds=0.01))
async def read(s: LearnState, ctx: Any) -> dict[str, Any]:
    """Check the version is still the context's current one."""
    context = contexts_tool(ctx.tools).get(s.context_id)
    if context.version != s.version:
        return {"superseded": True, "notes": [*s.notes, f"read: the context is at version {context.version} now; version {s.version} is not learned"]}
    return {}


@learn.stage(cost=Cost(calls=1, prompt=600, output=LEARN_TOKENS))
async def derive(s: LearnState, ctx: Any) -> dict[str, Any]:
    """A short summary and the quantities and facts the context states or implies, computed."""
    if s.superseded:
        return {}
    text, tokens = await _generate(ctx, derive_messages(contexts_tool(ctx.tools).get(s.context_id).text), s.max_tokens)
    summary, facts = read_derived(text)
    return {"summary": summary, "facts": facts, "learn_tokens": s.learn_tokens + tokens}


@learn.stage(cost=Cost(calls=1, prompt=800, output=LEARN_TOKENS))
async def anticipate(s: LearnState, ctx: Any) -> dict[str, Any]:
    """The questions most likely to be asked, each with a worked answer."""
    if s.superseded:
        return {}
    context = contexts_tool(ctx.tools).get(s.context_id)
    text, tokens = await _generate(ctx, anticipate_messages(context.text, s.facts, s.questions_n), s.max_tokens)
    return {"questions": read_questions(text)[: s.questions_n], "learn_tokens": s.learn_tokens + tokens}


@learn.stage(cost=Cost(seconds=0.01))
async def save(s: LearnState, ctx: Any) -> dict[str, Any]:
    """Store the learned context, tied to the version read; nothing if the context moved on."""
    if s.superseded:
        return {}
    content = LearnedContext(s.summary, s.facts, s.questions)
    saved = contexts_tool(ctx.tools).save_learned(s.context_id, s.version, ctx.run_id, content, s.learn_tokens)
    notes = list(s.notes)
    if not content.summary and not content.facts and not content.questions:
        notes.append("save: the model's output held no summary, fact or question in the asked format; the learned context is empty")
    if not saved:
        notes.append("save: the context changed or was deleted during the pass; nothing was saved")
    return {"saved": saved, "notes": notes}


learn.then(read, derive, anticipate, save)
register(learn)
