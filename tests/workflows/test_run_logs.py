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
