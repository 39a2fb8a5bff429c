"""The `sleeptime.learn` workflow: one context version -> its learned context, on idle capacity.

    read -> derive (summary, facts: one call) -> values (a program's first lines: one call)
         -> anticipate (the likeliest questions: one call)
         -> solve (the first `solve_n` of them, `samples` concurrent calls each) -> save

Sleep-time compute goes where the baseline spends test-time compute. `solve` answers each of the
likeliest questions with the baseline's own request (`answer_request`: its prompt and
step-by-step budget) `samples` times, the first greedy (the baseline's very call)
and the others sampled with distinct seeds, and keeps the majority final number with the working
of a sample that reached it and the share that agreed (self-consistency: the majority of several
samples is usually right more often than one greedy answer; ties go to the greedy sample, the
baseline's own call, so a lone sample never overrules it). A test-time question that asks the same then reuses the result for
the few tokens of one choice, and with `compute=true` any other question is answered by the rest of
a Python program whose first lines, the context's values, `values` wrote (see `sloflow.workflows.builtin.sleeptime.answer`). `learn_tokens` counts every call's output,
every sample included: the amortised cost per question is measured from it.

It has no deadline, so its calls are background calls: a worker serves them only when no deadline
call waits, and a deadline call that arrives while one runs preempts it (the generation stops at
its next token and starts over later; see `sloflow.scheduler.live.worker`). A preemption throws
away only what the calls it stops had generated, never the pass's finished calls, and each call
is bounded: `derive` and `anticipate` by `max_tokens` (default `LEARN_TOKENS`), each solve sample
by the baseline's budget (`STEP_BY_STEP_TOKENS`, or `solve_tokens`). The learned context is saved only if the context is
still at the version read: a pass that a newer version overtook saves nothing, so an old
version's learned context is never used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from sloflow.llm.types import GenerateRequest
from sloflow.workflows.budget import Cost
from sloflow.workflows.builtin.sleeptime.prompts import (
    STEP_BY_STEP_TOKENS,
    TOKENS_PER_QUESTION,
    VALUES_TOKENS,
    anticipate_messages,
    answer_request,
    derive_messages,
    last_number,
    read_derived,
    read_questions,
    values_request,
    working_of,
)
from sloflow.workflows.builtin.sleeptime.quantities import continued_code, learned_values
from sloflow.workflows.context import bound_tool
from sloflow.workflows.contexts import LearnedContext
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.registry import register

LEARN_TOKENS = 384  # per learn call: about 12 s of the 1.5B model on 2 cores
CONTEXT_ID_PATTERN = r"^[0-9a-f]{32}$"
SAMPLE_TEMPERATURE = 0.7  # the solve samples after the greedy one


class LearnState(BaseModel):
    """Input (the context version to learn, bounds) and what the stages fill in."""

    context_id: str = Field(pattern=CONTEXT_ID_PATTERN, description="a context of the caller (POST /v1/contexts)")
    version: int = Field(ge=1, description="the version to learn; a pass for an older version saves nothing")
    max_tokens: int = Field(LEARN_TOKENS, ge=16, le=2048, description="generated tokens per learn call, at most")
    questions_n: int = Field(5, ge=1, le=10, description="questions to anticipate")
    solve_n: int = Field(1, ge=0, le=10, description="anticipated questions solved in advance, the likeliest first (0: none)")
    samples: int = Field(3, ge=1, le=9, description="solutions per solved question: the first greedy, the others sampled; the majority result is kept")
    solve_tokens: int | None = Field(
        None, ge=8, le=2048, description=f"tokens per solution, at most; default the baseline's step-by-step budget ({STEP_BY_STEP_TOKENS})"
    )

    superseded: bool = False
    summary: str = ""
    facts: list[str] = Field(default_factory=list)
    quantities: str = Field("", description="a program's first lines: the context's values as Python assignments that evaluate")
    questions: list[dict[str, Any]] = Field(default_factory=list, description='{"question"}, and once solved "answer" (the working), "result", "agreement"')
    learn_tokens: int = 0
    saved: bool = False
    notes: list[str] = Field(default_factory=list)


learn = Workflow(
    "sleeptime.learn",
    state=LearnState,
    slo=None,
    description="context version -> learned context (summary, derived facts, anticipated questions, the likeliest solved by majority vote), on idle capacity",
)


def contexts_tool(tools: Mapping[str, Any]) -> Any:
    """The run tool `contexts` (the tenant's `TenantContexts`)."""
    return bound_tool(tools, "contexts", "this server keeps no contexts (its runtime binds no `contexts` tool)")


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


@learn.stage(cost=Cost(calls=1, prompt=700, output=VALUES_TOKENS))
async def values(s: LearnState, ctx: Any) -> dict[str, Any]:
    """The first lines of a program answering any question about the context: its values as Python; the lines that evaluate are kept."""
    if s.superseded:
        return {}
    text = contexts_tool(ctx.tools).get(s.context_id).text
    out = await ctx.llm.generate(values_request(text, min(s.max_tokens, VALUES_TOKENS)))
    quantities = learned_values(continued_code(out.text))
    notes = s.notes if quantities else [*s.notes, "values: no assignment in the model's code evaluated; questions will be answered step by step"]
    return {"quantities": quantities, "learn_tokens": s.learn_tokens + out.completion_tokens, "notes": notes}


@learn.stage(cost=Cost(calls=1, prompt=300, output=TOKENS_PER_QUESTION * 5))
async def anticipate(s: LearnState, ctx: Any) -> dict[str, Any]:
    """The questions most likely to be asked, the one the context most plainly leads up to first."""
    if s.superseded:
        return {}
    context = contexts_tool(ctx.tools).get(s.context_id)
    limit = min(s.max_tokens, TOKENS_PER_QUESTION * s.questions_n + 16)
    text, tokens = await _generate(ctx, anticipate_messages(context.text, s.questions_n), limit)
    return {"questions": [{"question": q} for q in read_questions(text, s.questions_n)], "learn_tokens": s.learn_tokens + tokens}


def majority(numbers: Sequence[float | None]) -> tuple[int, float] | None:
    """(index of the first sample giving the majority final number, the share of all samples giving it); None if none gives one.

    Ties go to the greedy sample (index 0), else to the number some sample reached first.
    """
    votes: dict[float, list[int]] = {}
    for i, number in enumerate(numbers):
        if number is not None:
            votes.setdefault(round(number, 6), []).append(i)
    if not votes:
        return None
    top = max(map(len, votes.values()))
    first = min(agreeing[0] for agreeing in votes.values() if len(agreeing) == top)
    return first, top / len(numbers)


def solved(question: str, answers: Sequence[str]) -> dict[str, Any]:
    """A stored question from its samples' answers: the majority result with one agreeing working; unsolved if none gives a number."""
    vote = majority([last_number(a) for a in answers])
    if vote is None:
        return {"question": question}
    chosen, agreement = vote
    return {"question": question, "answer": working_of(answers[chosen]), "result": last_number(answers[chosen]), "agreement": round(agreement, 3)}


@learn.stage(cost=Cost(calls=1, prompt=300, output=STEP_BY_STEP_TOKENS))  # the samples run concurrently
async def solve(s: LearnState, ctx: Any) -> dict[str, Any]:
    """The first `solve_n` questions, each answered `samples` times with the baseline's request; the majority result kept."""
    chosen = s.questions[: s.solve_n]
    if s.superseded or not chosen:
        return {}
    text = contexts_tool(ctx.tools).get(s.context_id).text
    requests = [  # k = 0: the baseline's own call, greedy
        answer_request(text, q["question"], max_tokens=s.solve_tokens, temperature=SAMPLE_TEMPERATURE if k else 0.0, seed=k or None)
        for q in chosen
        for k in range(s.samples)
    ]
    outs = await asyncio.gather(*(ctx.llm.generate(r) for r in requests))
    answers = [[o.text for o in outs[i * s.samples : (i + 1) * s.samples]] for i in range(len(chosen))]
    questions = [solved(q["question"], a) for q, a in zip(chosen, answers)] + s.questions[len(chosen) :]
    unsolved = [q["question"] for q in questions[: len(chosen)] if "result" not in q]
    notes = [*s.notes, *(f"solve: no sample of {q!r} ended in a number; it is kept as a likely question" for q in unsolved)]
    return {"questions": questions, "learn_tokens": s.learn_tokens + sum(o.completion_tokens for o in outs), "notes": notes}


@learn.stage(cost=Cost(seconds=0.01))
async def save(s: LearnState, ctx: Any) -> dict[str, Any]:
    """Store the learned context, tied to the version read; nothing if the context moved on."""
    if s.superseded:
        return {}
    content = LearnedContext(s.summary, s.facts, s.questions, s.quantities)
    saved = contexts_tool(ctx.tools).save_learned(s.context_id, s.version, ctx.run_id, content, s.learn_tokens)
    notes = list(s.notes)
    if not content.summary and not content.facts and not content.questions and not content.quantities:
        notes.append("save: the model's output held no summary, fact, quantity or question in the asked format; the learned context is empty")
    if not saved:
        notes.append("save: the context changed or was deleted during the pass; nothing was saved")
    return {"saved": saved, "notes": notes}


learn.then(read, derive, values, anticipate, solve, save)
register(learn)
