"""The `reaper` workflow (REAPER, Amazon Rufus 2024): one generation plans every retrieval, then one answer.

    plan (one call; one repair; else the default plan) -> execute (the plan as a DAG) -> answer (one call)

The planner sees the registered sources (indexes, `sql:DB`, `schema:DB`, functions) and, from
plan memory, the plans of earlier requests (IC-Cache's idea: every stored plan shape while they are
few, in a prompt that stays cached; else the most similar). Stages reach the
sources only through run tools: `catalog()`, `call(name, args)` and `plan_memory`; see `tools()`.
At the run's deadline the call in flight is cancelled: planning falls back to the default plan,
and the answer says which evidence was gathered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from sloflow.errors import DeadlineExceeded, InvalidRequest, NotFound
from sloflow.llm.types import Message
from sloflow.planners.plans import RESULT, execute_plan, find_references, parse_plan, plan_sources
from sloflow.planners.plans.evidence import Evidence, answer_messages, citations, fallback_answer
from sloflow.planners.plans.planner import make_plan
from sloflow.workflows.budget import Cost
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.outcomes import count_outcome
from sloflow.workflows.registry import register

ANSWER_TOKENS = 160


class ReaperState(BaseModel):
    """Input (question, options) and what the stages fill in."""

    question: str = Field(min_length=1, max_length=4000)
    sources: list[str] | None = Field(None, description="the sources the plan may call; unset: every registered source")
    namespace: str = Field("default", min_length=1, max_length=128, description="plan memory is kept per namespace")
    memory: bool = Field(True, description="use and extend plan memory")
    examples_k: int = Field(3, ge=0, le=8, description="nearest stored plans shown to the planner when memory holds too many plan shapes to show all; 0: none")
    models: dict[Literal["plan", "answer"], str] = Field(default_factory=dict, description="a model per LLM stage")

    plan: list[dict[str, Any]] = Field(default_factory=list)
    plan_prompt: list[dict[str, str]] = Field(default_factory=list, description="what the planner was asked (role, content)")
    plan_outcome: Literal["", "valid", "repaired", "default"] = ""
    examples_used: int = 0
    calls: list[dict[str, Any]] = Field(default_factory=list)
    answer: str = ""
    citations: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


reaper = Workflow(
    "reaper",
    state=ReaperState,
    slo=60.0,
    description="question -> one retrieval plan over the registered sources -> parallel execution -> one cited answer",
)


def tools(sources: Any, memory: Any = None) -> dict[str, Any]:
    """The run tools this workflow (and `react`) uses, from a `SourceRegistry` and a `PlanMemory`."""
    return {"catalog": sources.catalog, "call": sources.call, "plan_memory": memory}


def tool(ctx: Any, name: str) -> Any:
    """A run tool, or the process-wide sources' own when the runtime bound none (e.g. the CLI)."""
    if name in ctx.tools:
        return ctx.tools[name]
    from sloflow.retrieval.sources import default_sources

    return tools(default_sources()).get(name)


def sources_are_registered(s: Any, tools: Mapping[str, Any]) -> None:
    """Admission: every source a run names must be one of the tenant's (reaper and react)."""
    catalog = tools.get("catalog")
    if s.sources is not None and catalog is not None:
        _refuse_unknown(s.sources, {c.name for c in catalog()})


def _refuse_unknown(names: list[str], known: Mapping[str, Any] | set[str]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise NotFound(f"sources {unknown} are not registered; GET /v1/sources lists them", details={"unknown": unknown})


reaper.admit(sources_are_registered)


def chosen_sources(s: ReaperState, ctx: Any) -> list[Any]:
    """The catalog entries a run may call (all, or those it names); a name that does not exist is an error."""
    catalog = tool(ctx, "catalog")()
    if s.sources is None:
        return catalog
    by_name = {c.name: c for c in catalog}
    _refuse_unknown(s.sources, by_name)  # admission refused them already, unless one went since
    return [by_name[n] for n in s.sources]


@reaper.stage(cost=Cost(calls=1, prompt=900, output=120))
async def plan(s: ReaperState, ctx: Any) -> dict[str, Any]:
    """The whole plan in one generation, with stored plans as examples (`stored_examples`)."""
    sources = chosen_sources(s, ctx)
    memory = tool(ctx, "plan_memory") if s.memory else None
    examples = []
    if memory is not None and s.examples_k:
        examples = await asyncio.to_thread(stored_examples, memory, s, sources)
    planned = await make_plan(ctx.llm, s.question, sources, examples, model=s.models.get("plan"))
    count_outcome("reaper", f"plan_{planned.outcome}")
    return {
        "plan": planned.plan.to_nestful(),
        "plan_prompt": [m.model_dump() for m in planned.prompt],
        "plan_outcome": planned.outcome,
        "examples_used": len(examples),
        "notes": [*s.notes, *planned.notes],
    }


def stored_examples(memory: Any, s: ReaperState, sources: list[Any]) -> list[Any]:
    """Every stored plan shape while memory holds few (the same examples for every question, in a
    planner prompt that each worker prefills once and keeps in its prompt cache), else the
    `examples_k` nearest (new prefill for each question).

    Measured on tau2 retail (21 stored plans, 6 shapes): the plan prompt's prefill fell from about
    15 s to about 1.4 s a request; adding the nearest plan beside the question lost evidence recall.
    """
    every = memory.every_shape(s.namespace, sources)
    return every if every is not None else memory.examples(s.namespace, s.question, sources, s.examples_k)


@reaper.stage(cost=Cost(seconds=0.2))
async def execute(s: ReaperState, ctx: Any) -> dict[str, Any]:
    """Run the plan: independent steps at once, a failed step skips only what depends on it."""
    sources = plan_sources(chosen_sources(s, ctx))
    left = None if ctx.deadline is None else ctx.deadline - time.time()
    if left is not None and left <= 0:
        return {"notes": [*s.notes, "execution: the deadline had passed; no source was called"]}
    run = await execute_plan(parse_plan(s.plan), tool(ctx, "call"), step_timeout_s=left, sources=sources)
    notes = list(s.notes)
    for r in run.steps:
        if r.status != "ok" or r.error:
            notes.append(f"execution: {r.label} ({r.source}) {r.status}: {r.error}")
    return {"calls": [r.to_dict() for r in run.steps], "notes": notes}


@reaper.stage(cost=Cost(calls=1, prompt=1500, output=80))
async def answer(s: ReaperState, ctx: Any) -> dict[str, Any]:
    """One answer from the evidence with its provenance; remembers a plan that fully worked."""
    evidence = _evidence(s)
    notes = list(s.notes)
    # The answer continues the planner's conversation: the worker that planned prefills only the evidence.
    planned = [Message(**m) for m in s.plan_prompt] + [Message(role="assistant", content=parse_plan(s.plan).to_json())] if s.plan_prompt else []
    try:
        try:
            text = await ctx.llm.text(answer_messages(s.question, evidence, planned), max_tokens=ANSWER_TOKENS, model=s.models.get("answer"))
        except InvalidRequest:
            if not planned:
                raise
            # Refused before any prefill, e.g. conversation and evidence exceed a small model's context.
            notes.append("answer: the planner's conversation and the evidence did not fit the answer model's context; it was asked without the conversation")
            text = await ctx.llm.text(answer_messages(s.question, evidence), max_tokens=ANSWER_TOKENS, model=s.models.get("answer"))
    except DeadlineExceeded:
        notes.append("answer: the deadline passed before the answer was written; it lists the evidence gathered")
        return {"answer": fallback_answer(evidence), "notes": notes}
    text = text.strip()
    if s.memory and s.plan_outcome in ("valid", "repaired") and text and all(c["status"] == "ok" for c in s.calls):
        memory = tool(ctx, "plan_memory")
        if memory is not None:
            sources = chosen_sources(s, ctx)
            await asyncio.to_thread(memory.remember, s.namespace, s.question, parse_plan(s.plan), sources)
    return {"answer": text, "citations": citations(text, evidence), "notes": notes}


def _evidence(s: ReaperState) -> list[Evidence]:
    """The calls the plan's var_result names (all calls if it names none), with their provenance."""
    final = s.plan[-1] if s.plan and s.plan[-1].get("name") == RESULT else None
    needed = {r.label for r in find_references(final["arguments"])} if final else set()
    return [
        Evidence(c["label"], c["source"], c["arguments"], c["output"], c["error"] if c["status"] != "ok" else None)
        for c in s.calls
        if not needed or c["label"] in needed
    ]


reaper.then(plan, execute, answer)
register(reaper)

