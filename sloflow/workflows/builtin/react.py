"""The `react` workflow: the ReAct-style baseline `reaper` is measured against.

    step (one call: a thought and one source call, or finish) -> [step]* -> answer

The same sources as tools, one LLM call per step with every earlier observation in the prompt,
until the model finishes or the step bound is reached; then, if it did not finish, one answer
call from the observations. The conversation grows by appending, so each call reuses the
previous one's prompt cache.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from sloflow.errors import DeadlineExceeded, InvalidRequest, SloflowError
from sloflow.llm.types import Message
from sloflow.planners.plans.catalog import plan_sources
from sloflow.planners.plans.evidence import ANSWER_INSTRUCTIONS, Evidence, answer_messages, citations, compact, fallback_answer
from sloflow.planners.plans.grammar import FINISH, action_json_schema
from sloflow.planners.plans.prompts import describe_source
from sloflow.planners.plans.references import plain
from sloflow.workflows.budget import Cost
from sloflow.workflows.builtin.reaper import chosen_sources, sources_are_registered, tool
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.registry import register

OBSERVATION_CHARS = 1500
MAX_STEPS = 12
_SYSTEM = """\
You answer a question by calling sources, one call per turn; after each call you see its output.
Each turn, answer with JSON only: {"thought": "<short reasoning>", "name": "<source>", "arguments": {...}}.
When you have what the answer needs, use {"thought": "...", "name": "finish", "arguments": {"answer": "<the answer>"}}.
Copy ids, names and numbers the question gives into the arguments as they are. An observation that is an error means the
call failed: try another source or other arguments, never the same call again.

Sources:
"""


class ReactState(BaseModel):
    """Input (question, options) and the steps taken."""

    question: str = Field(min_length=1, max_length=4000)
    sources: list[str] | None = Field(None, description="the sources the agent may call; unset: every registered source")
    max_steps: int = Field(6, ge=1, le=MAX_STEPS, description="source calls at most before it must answer")
    models: dict[Literal["step", "answer"], str] = Field(default_factory=dict, description="a model per LLM stage")

    steps: list[dict[str, Any]] = Field(default_factory=list)
    done: bool = False
    answer: str = ""
    citations: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


react = Workflow(
    "react",
    state=ReactState,
    slo=120.0,
    description="question -> one LLM call per source call (thought, action, observation) until it answers: the baseline for reaper",
)


react.admit(sources_are_registered)


def _messages(s: ReactState, sources: list[Any]) -> list[Message]:
    system = _SYSTEM + "\n".join(describe_source(p) for p in plan_sources(sources))
    out = [Message(role="system", content=system), Message(role="user", content=f"Question: {s.question.strip()}")]
    for step in s.steps:
        action = {"thought": step["thought"], "name": step["source"], "arguments": step["arguments"]}
        out.append(Message(role="assistant", content=json.dumps(action, ensure_ascii=False)))
        seen = f"failed: {step['error']}" if step.get("error") else compact(step.get("output"), OBSERVATION_CHARS, s.question)
        out.append(Message(role="user", content=f"Observation [{step['label']}]: {seen}"))
    return out


@react.stage(cost=Cost(calls=1, prompt=1200, output=60))
async def step(s: ReactState, ctx: Any) -> dict[str, Any]:
    """One thought and one source call (or the final answer)."""
    sources = chosen_sources(s, ctx)
    try:
        action = await ctx.llm.json(_messages(s, sources), schema=action_json_schema(sources), max_tokens=256, model=s.models.get("step"))
    except DeadlineExceeded:
        return {"done": True, "notes": [*s.notes, f"step {len(s.steps) + 1}: the deadline passed; answering from what was observed"]}
    except SloflowError as exc:
        return {"done": True, "notes": [*s.notes, f"step {len(s.steps) + 1}: no usable action ({exc.message[:160]})"]}
    if action.get("name") == FINISH:
        answer = str(action.get("arguments", {}).get("answer", "")).strip()
        evidence = _evidence(s)
        return {"done": True, "answer": answer, "citations": citations(answer, evidence)}
    label = f"var{len(s.steps) + 1}"
    record: dict[str, Any] = {"label": label, "thought": action.get("thought", ""), "source": action["name"], "arguments": action.get("arguments", {})}
    try:
        record["output"] = plain(await tool(ctx, "call")(action["name"], record["arguments"]))
    except SloflowError as exc:
        record["error"] = exc.message
    steps = [*s.steps, record]
    return {"steps": steps, "done": len(steps) >= s.max_steps}


def _evidence(s: ReactState) -> list[Evidence]:
    return [Evidence(st["label"], st["source"], st["arguments"], st.get("output"), st.get("error")) for st in s.steps]


@react.stage(cost=Cost(calls=1, prompt=1500, output=80))
async def answer(s: ReactState, ctx: Any) -> dict[str, Any]:
    """The finish step's answer, or, when the steps ran out first, one answer call from the observations."""
    if s.answer:
        return {}
    evidence = _evidence(s)
    # The agent's own conversation, which its worker still holds, plus the instructions: only they are new prefill.
    ask = Message(role="user", content=f"The steps are over. {ANSWER_INSTRUCTIONS} Write prose, not JSON.\n\nQuestion: {s.question.strip()}")
    notes = [*s.notes, f"answer: written after {len(s.steps)} steps without a finish"]
    try:
        try:
            text = await ctx.llm.text([*_messages(s, chosen_sources(s, ctx)), ask], max_tokens=160, model=s.models.get("answer"))
        except InvalidRequest:  # the conversation and its last observation exceed the model's context
            notes.append("answer: the conversation did not fit the answer model's context; it was asked from the compacted observations")
            text = await ctx.llm.text(answer_messages(s.question, evidence), max_tokens=160, model=s.models.get("answer"))
    except DeadlineExceeded:
        return {"answer": fallback_answer(evidence), "notes": [*s.notes, "answer: the deadline passed before the answer was written"]}
    text = text.strip()
    return {"answer": text, "citations": citations(text, evidence), "notes": notes}


react.then(step, answer)
react.loop(step, back_to=step, while_=lambda s: not s.done, max_times=MAX_STEPS, expected=3)
register(react)
