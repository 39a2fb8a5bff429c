"""The `sleeptime` workflow: a question about a context, answered from its learned context where that applies.

    read (context, and its learned context if ready for the current version)
      -> answer: reuse a solved result (one short choice call)
                 | the rest of a program whose first lines were learned (one short call)
                 | step by step (one call)

The learn pass solved the likeliest questions in advance, each by a majority of several
step-by-step samples. A question that asks for one of those results gets it for the price of one
short call: `prompts.reusable` keeps the solved questions that read alike (embedding similarity)
and that the question brings no new values to, and the model then picks the one asking the same
(or none). With `compute=true`, any other question is answered by a Python program whose first
lines, the context's values, the learn pass wrote: the model continues it with the steps the
question needs, ending in `answer = ...`, which `quantities.result` evaluates without executing
anything. It is opt-in because with qwen2.5-coder-1.5b those programs are right somewhat less
often than a step-by-step answer (bench/RESULTS.md, sleep-time compute). Every other question, and every
question without a current learned context (not learned yet, failed, or `use_learned=false`),
gets the baseline's step-by-step answer. The
output says whether a learned context was current (`used_learned`), which solved question was
reused (`reused`), whether the answer was computed by a program (`computed`), and why.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from sloflow.errors import DeadlineExceeded
from sloflow.llm.types import GenerateRequest
from sloflow.retrieval.embedder import get_embedder
from sloflow.workflows.budget import Cost
from sloflow.workflows.builtin.sleeptime.learn import CONTEXT_ID_PATTERN, contexts_tool
from sloflow.workflows.builtin.sleeptime.prompts import (
    MATCH_TOKENS,
    PROGRAM_TOKENS,
    REUSE_SIMILARITY,
    STEP_BY_STEP_TOKENS,
    answer_request,
    brings_values,
    match_messages,
    number_text,
    program_request,
    read_choice,
    reusable,
    reused_answer,
)
from sloflow.workflows.builtin.sleeptime.quantities import continued_code, evaluate, result
from sloflow.workflows.contexts import LearnedContext
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.outcomes import count_outcome
from sloflow.workflows.registry import register


class SleeptimeState(BaseModel):
    """Input (context, question, options) and what the stages fill in."""

    context_id: str = Field(pattern=CONTEXT_ID_PATTERN, description="a context of the caller (POST /v1/contexts)")
    question: str = Field(min_length=1, max_length=4000)
    use_learned: bool = Field(True, description="use the learned context when it is ready; false answers from the raw context (the baseline)")
    compute: bool = Field(
        False, description="answer an unsolved question by continuing the learned program of the context's values (fewer tokens; less accurate, see the README); false: step by step"
    )
    max_tokens: int | None = Field(
        None, ge=8, le=2048, description=f"output tokens of the answer, the choice and compute calls' included, at most; default {STEP_BY_STEP_TOKENS} step by step"
    )

    context_version: int = 0
    learned: dict[str, Any] | None = Field(None, description="the learned context used")
    used_learned: bool = False
    reused: str | None = Field(None, description="the solved question whose result answered this one")
    computed: bool = Field(False, description="answered by a program continuing the learned values")
    answer: str = ""
    output_tokens: int = 0
    notes: list[str] = Field(default_factory=list)


sleeptime = Workflow(
    "sleeptime",
    state=SleeptimeState,
    slo=30.0,
    description="question about a context -> the result its learned context solved in advance (precomputed on idle capacity), "
    "else a program continuing its learned values, else step by step",
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


async def _match(ctx: Any, text: str, question: str, learned: LearnedContext) -> tuple[dict[str, Any] | None, int, str]:
    """(the solved question this one asks the same as, or None; output tokens spent; why)."""
    solved = [q for q in learned.questions if q.get("result") is not None]
    if not solved:
        return None, 0, "the learn pass solved no question"
    if brings_values(question, text):  # decided without embedding anything
        return None, 0, "the question brings values of its own, so it was not solved in advance"
    vectors = await asyncio.to_thread(get_embedder().embed, [question, *(q["question"] for q in solved)])
    similarity = [float(v @ vectors[0]) for v in vectors[1:]]
    candidates = reusable(question, text, solved, similarity)
    if not candidates:
        return None, 0, f"no solved question reads alike (similarity at most {max(similarity):.2f}, reused from {REUSE_SIMILARITY})"
    out = await ctx.llm.generate(GenerateRequest(messages=match_messages(text, question, candidates), max_tokens=MATCH_TOKENS, temperature=0.0))
    choice = read_choice(out.text, len(candidates))
    if choice is None:
        return None, out.completion_tokens, f"the model judged none of {len(candidates)} similar solved question(s) the same"
    return candidates[choice - 1], out.completion_tokens, ""


async def _compute(ctx: Any, text: str, question: str, values: str, max_tokens: int) -> tuple[str | None, int, str]:
    """(the answer of the program that continues the learned `values`, or None; output tokens spent; why not)."""
    out = await ctx.llm.generate(program_request(text, values, question, max_tokens))
    code = continued_code(out.text)
    number = result(code, evaluate(values)[0])
    if number is None:
        return None, out.completion_tokens, "the program continuing the learned values gave no number that evaluates"
    return f"{values}\n{code}\nAnswer: {number_text(number)}", out.completion_tokens, ""


@sleeptime.stage(cost=Cost(calls=1, prompt=600, output=STEP_BY_STEP_TOKENS))
async def answer(s: SleeptimeState, ctx: Any) -> dict[str, Any]:
    """The solved result when the learn pass solved this question; else a program continuing its learned values; else step by step."""
    context = contexts_tool(ctx.tools).get(s.context_id)
    learned = LearnedContext(**s.learned) if s.learned is not None else None
    notes = list(s.notes)
    if learned is not None and context.version != s.context_version:  # changed since `read`: its learned context is old
        learned = None
        notes.append(f"answer: the context changed to version {context.version} meanwhile; its old learned context was not used")
    used = {"used_learned": learned is not None, "learned": s.learned if learned is not None else None, "context_version": context.version}
    spent = 0
    try:
        if learned is not None:
            found, spent, why = await _match(ctx, context.text, s.question, learned)
            if found is not None:
                count_outcome("sleeptime", "reused")
                notes.append(f"answer: the learn pass solved this question ({found['question']!r}); its result was reused")
                return {**used, "reused": found["question"], "answer": reused_answer(found), "output_tokens": spent, "notes": notes}
            notes.append(f"answer: {why}")
            room = min(PROGRAM_TOKENS, s.max_tokens - spent) if s.max_tokens else PROGRAM_TOKENS
            if s.compute and learned.quantities and room > 0:  # the caller's bound covers this call too
                computed, tokens, why = await _compute(ctx, context.text, s.question, learned.quantities, room)
                spent += tokens
                if computed is not None:
                    count_outcome("sleeptime", "computed")
                    notes.append("answer: computed by a program continuing the learned values")
                    return {**used, "computed": True, "answer": computed, "output_tokens": spent, "notes": notes}
                notes.append(f"answer: {why}")
            notes.append("answer: answered step by step")
        limit = s.max_tokens - spent if s.max_tokens else None  # the caller's bound covers the choice and compute calls too
        if limit is not None and limit <= 0:
            return {**used, "output_tokens": spent, "notes": [*notes, "answer: max_tokens was spent before a step-by-step answer could be written"]}
        out = await ctx.llm.generate(answer_request(context.text, s.question, max_tokens=limit))
    except DeadlineExceeded:
        return {**used, "output_tokens": spent, "notes": [*notes, "answer: the deadline passed before the answer was written"]}
    count_outcome("sleeptime", "with_learned" if learned is not None else "without_learned")
    return {**used, "answer": out.text.strip(), "output_tokens": spent + out.completion_tokens, "notes": notes}


sleeptime.then(read, answer)
register(sleeptime)
