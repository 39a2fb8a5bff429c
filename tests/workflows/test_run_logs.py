"""A run's log lines, from the runtime and from inside its stages, carry its run and stage ids."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import BaseModel

from sloflow import Workflow
from sloflow.logs import JsonFormatter
from sloflow.workflows import Registry, RunStatus, Runtime


class Q(BaseModel):
    question: str
    answer: str = ""


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.docs: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.docs.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Lines:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


async def test_stage_logs_and_the_run_end_carry_run_and_stage_ids(registry: Registry, memory_runtime: Runtime, lines: Lines) -> None:
    wf = Workflow("logged", state=Q, slo=30.0)

    @wf.stage
    async def answer(s, ctx):
        logging.getLogger("user.stage").info("thinking about %s", s.question)
        return {"answer": await ctx.llm.text(s.question)}

    @wf.stage
    async def explode(s, ctx):
        raise ValueError("no luck")

    wf.then(answer, explode)
    registry.add(wf)
    record = await memory_runtime.run("logged", {"question": "why"})
    assert record.status is RunStatus.failed
    inside = next(d for d in lines.docs if d["logger"] == "user.stage")
    assert inside == {**inside, "run_id": record.id, "workflow": "logged", "stage": "answer", "message": "thinking about why"}
    failed = next(d for d in lines.docs if d["message"].startswith("stage failed"))
    assert (failed["stage"], failed["run_id"], failed["level"]) == ("explode", record.id, "WARNING")
    end = next(d for d in lines.docs if d["message"].startswith("run failed"))
    assert end["run_id"] == record.id and "stage" not in end and "no luck" in end["message"]


async def test_every_kind_of_llm_call_is_recorded_as_an_llm_call_event(registry: Registry, memory_runtime: Runtime, llm) -> None:
    llm.reply = '{"a": 1} and then a loop'
    wf = Workflow("calls", state=Q, slo=30.0)

    @wf.stage
    async def answer(s, ctx):
        from sloflow.llm.types import GenerateRequest, Message

        request = GenerateRequest(messages=[Message(role="user", content=s.question)])
        await ctx.llm.generate(request)
        await ctx.llm.prefill(request)
        await ctx.llm.stream(request)
        await ctx.llm.text(s.question, tokens=True)
        closed = await ctx.llm.json(s.question, schema={"type": "object"}, cut=lambda t: t[: t.index("}") + 1] if "}" in t else None)
        return {"answer": str(closed)}

    registry.add(wf)
    record = await memory_runtime.run("calls", {"question": "why"})
    assert record.status is RunStatus.succeeded, record.error
    calls = [e for e in memory_runtime.store.events(record.id) if e.kind == "llm_call"]
    assert len(calls) == len(llm.calls) == 5 and all(e.stage == "answer" for e in calls)
    assert all(e.data["started_at"] > 0 and e.data["prefill_s"] >= 0 and e.data["decode_s"] >= 0 for e in calls)
    *whole, cut = calls
    assert all(e.data["prompt_tokens"] == 3 for e in whole)
    assert cut.data["cut"] and cut.data["completion_tokens"] == 2 and cut.data["prompt_tokens"] is None
