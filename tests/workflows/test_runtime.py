"""Running workflows: branches, fan-outs, loops, retries, timeouts, tools, events, cancellation."""

from __future__ import annotations

import asyncio
import operator
import time
from typing import Annotated, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from sloflow import Cost, Retry, Workflow
from sloflow.errors import Conflict, DeadlineExceeded, NotFound
from sloflow.workflows import InvalidInput, Registry, RunStatus, Runtime


class Doc(BaseModel):
    question: str
    parts: list[str] = []
    answers: Annotated[list[str], operator.add] = []
    rounds: int = 0
    route: str = ""


def fan_branch_loop() -> Workflow:
    wf = Workflow("fbl", state=Doc, slo=30.0)

    @wf.stage(cost=Cost(seconds=0.1))
    async def split(s, ctx):
        return {"parts": s.question.split()}

    @wf.stage(fan_out="parts", cost=Cost(calls=1, prompt=100, output=20))
    async def answer(s, ctx, part):
        return {"answers": [part.upper()]}

    @wf.stage
    async def check(s, ctx):
        return {"rounds": s.rounds + 1}

    @wf.stage
    async def short(s, ctx):
        return {"route": "short"}

    @wf.stage
    async def long(s, ctx):
        return {"route": "long"}

    @wf.stage
    async def pick(s, ctx):
        return {}

    wf.then(split, answer, check, "pick")  # stages by function or by name
    wf.loop(check, back_to=answer, while_=lambda s: True, max_times=2, expected=1)
    wf.branch(pick, lambda s: long if len(s.answers) > 4 else short, options=[short, long], expected=short)
    return wf


async def test_fan_out_loop_and_branch_run_as_declared(registry: Registry, memory_runtime: Runtime):
    registry.add(fan_branch_loop())
    run = await memory_runtime.run("fbl", {"question": "a b"})
    assert run.status is RunStatus.succeeded, run.error
    # the loop goes back at most max_times=2 times: three rounds of two fan-out instances
    assert run.output["rounds"] == 3
    assert sorted(run.output["answers"]) == ["A", "A", "A", "B", "B", "B"]
    assert run.output["route"] == "long"
    ran = [t["stage"] for t in run.stages]
    assert ran.count("answer") == 6 and ran.count("check") == 3 and "short" not in ran
    assert sorted(t["index"] for t in run.stages if t["stage"] == "answer") == [0, 0, 0, 1, 1, 1]


async def test_an_empty_fan_out_goes_straight_on(registry: Registry, memory_runtime: Runtime):
    wf = fan_branch_loop()
    registry.add(wf)
    run = await memory_runtime.run("fbl", {"question": ""})
    assert run.status is RunStatus.succeeded, run.error
    assert run.output["answers"] == [] and run.output["route"] == "short"


async def test_stage_context_carries_budget_deadline_and_tools(registry: Registry, llm, memory_runtime: Runtime):
    seen = {}
    wf = Workflow("ctx", state=Doc, slo=20.0)

    @wf.stage(cost=Cost(seconds=1.0))
    async def first(s, ctx):
        seen["first"] = (ctx.budget_s, ctx.deadline, ctx.run_id, ctx.stage)
        docs = await ctx.retrieve("kb", s.question, k=2)
        return {"parts": docs, "answers": [await ctx.llm.text("hi")]}

    @wf.stage(cost=Cost(seconds=3.0))
    async def second(s, ctx):
        seen["second"] = ctx.budget_s
        return {}

    wf.then(first, second)
    registry.add(wf)

    async def retrieve(source: str, query: str, k: int) -> list[str]:
        return [f"{source}:{query}"] * k

    runtime = Runtime(memory_runtime.store, None, client=llm, tools={"retrieve": retrieve}, registry=registry)
    run = await runtime.run("ctx", {"question": "q"})
    assert run.status is RunStatus.succeeded, run.error
    budget, deadline, run_id, stage = seen["first"]
    assert (run_id, stage, deadline) == (run.id, "first", run.deadline)
    # HEXGEN split: 1 s of 1 + 3 s expected => a quarter of the ~20 s left
    assert budget == pytest.approx(5.0, abs=0.1)
    assert seen["second"] == pytest.approx(20.0, abs=0.2)  # the last stage gets all that is left
    assert run.output["parts"] == ["kb:q", "kb:q"]
    (request, call), = llm.calls
    assert (call.run_id, call.workflow, call.stage, call.deadline, call.budget_s) == (run.id, "ctx", "first", run.deadline, budget)
    assert request.messages[0].content == "hi"


async def test_a_run_without_slo_is_background_work(registry: Registry, llm, memory_runtime: Runtime):
    wf = Workflow("bg", state=Doc)

    @wf.stage
    async def only(s, ctx):
        return {"answers": [await ctx.llm.text("x")], "route": repr(ctx.budget_s)}

    registry.add(wf)
    run = await memory_runtime.run("bg", {"question": "q"})
    assert run.status is RunStatus.succeeded
    assert run.deadline is None and run.deadline_met is None and run.output["route"] == "None"
    assert llm.calls[0][1].deadline is None and llm.calls[0][1].priority == "background"


async def test_an_slo_given_to_the_run_overrides_the_default(registry: Registry, memory_runtime: Runtime):
    wf = Workflow("slo", state=Doc, slo=100.0)
    wf.stage(_noop, name="only")
    registry.add(wf)
    run = await memory_runtime.run("slo", {"question": "q"}, slo=2.0)
    assert run.slo_s == 2.0 and run.deadline == pytest.approx(run.created_at + 2.0)
    assert run.deadline_met is True


async def _noop(s, ctx):
    return None


async def test_retry_then_success_and_timeouts_fail_naming_the_stage(registry: Registry, memory_runtime: Runtime):
    tries = []
    wf = Workflow("flaky", state=Doc)

    @wf.stage(retry=Retry(attempts=3, backoff_s=0.01, on=(ConnectionError,)))
    async def flaky(s, ctx):
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("try again")
        return {"route": "done"}

    @wf.stage(timeout=0.05)
    async def slow(s, ctx):
        await asyncio.sleep(5)

    wf.then(flaky, slow)
    registry.add(wf)
    run = await memory_runtime.run("flaky", {"question": "q"})
    assert len(tries) == 3
    assert run.stages[0]["stage"] == "flaky" and run.stages[0]["attempts"] == 3
    kinds = [e.kind for e in memory_runtime.store.events(run.id)]
    assert kinds.count("stage_retry") == 2
    assert run.status is RunStatus.failed
    assert run.error["stage"] == "slow" and run.error["code"] == "deadline_exceeded"
    assert "'slow' did not finish within its 0.05s timeout" in run.error["message"]


async def test_exceptions_not_listed_in_retry_are_not_retried(registry: Registry, memory_runtime: Runtime):
    tries = []
    wf = Workflow("strict", state=Doc)

    @wf.stage(retry=Retry(attempts=3, backoff_s=0, on=(ConnectionError,)))
    async def picky(s, ctx):
        tries.append(1)
        raise ValueError("bad value")

    registry.add(wf)
    run = await memory_runtime.run("strict", {"question": "q"})
    assert len(tries) == 1
    assert run.status is RunStatus.failed and run.error == {"code": "ValueError", "message": "bad value", "stage": "picky"}


async def test_invalid_input_names_the_field_and_unknown_workflows_are_not_found(registry: Registry, memory_runtime: Runtime):
    registry.add(fan_branch_loop())
    with pytest.raises(InvalidInput) as info:
        await memory_runtime.start("fbl", {"parts": "not a list"})
    fields = {f["field"] for f in info.value.details["fields"]}
    assert fields == {"question", "parts"} and info.value.status_code == 422
    with pytest.raises(NotFound, match="no workflow named 'nope'"):
        await memory_runtime.start("nope", {})


def two_stage_with_gate(gate: asyncio.Event, reached: list[str]) -> Workflow:
    wf = Workflow("gated", state=Doc, slo=60.0)

    @wf.stage
    async def first(s, ctx):
        reached.append("first")
        await gate.wait()
        return {}

    @wf.stage
    async def second(s, ctx):
        reached.append("second")
        return {}

    wf.then(first, second)
    return wf


async def test_cancel_stops_between_stages(registry: Registry, memory_runtime: Runtime):
    gate, reached = asyncio.Event(), []
    registry.add(two_stage_with_gate(gate, reached))
    run = await memory_runtime.start("gated", {"question": "q"})
    while not reached:
        await asyncio.sleep(0.005)
    await memory_runtime.cancel(run.id)
    gate.set()  # the stage in progress finishes; the next one must not start
    done = await memory_runtime.wait(run.id)
    assert done.status is RunStatus.cancelled and reached == ["first"]
    assert done.deadline_met is None and done.finished_at is not None
    with pytest.raises(Conflict, match="already cancelled"):
        await memory_runtime.cancel(run.id)


async def test_cancel_withdraws_pending_llm_calls(registry: Registry, llm, memory_runtime: Runtime):
    wf = Workflow("waits", state=Doc, slo=60.0)
    after = []

    @wf.stage
    async def ask(s, ctx):
        return {"answers": [await ctx.llm.text("long question")]}

    @wf.stage
    async def later(s, ctx):
        after.append(1)

    wf.then(ask, later)
    registry.add(wf)
    llm.hold = True
    run = await memory_runtime.start("waits", {"question": "q"})
    await asyncio.wait_for(llm.entered.wait(), 5)
    await memory_runtime.cancel(run.id)
    done = await asyncio.wait_for(memory_runtime.wait(run.id), 5)
    assert llm.withdrawn == 1
    assert done.status is RunStatus.cancelled and after == []
    assert "withdrawn" in done.error["message"]


async def test_events_are_ordered_and_readable_from_any_id(registry: Registry, memory_runtime: Runtime):
    registry.add(fan_branch_loop())
    run = await memory_runtime.run("fbl", {"question": "a b"})
    everything = [e async for e in memory_runtime.follow(run.id)]
    assert [e.id for e in everything] == list(range(1, len(everything) + 1))
    assert everything[0].kind == "run_started" and everything[-1].kind == "run_finished"
    tail = [e async for e in memory_runtime.follow(run.id, after=5)]
    assert tail == everything[5:]


async def test_a_follower_sees_events_live_until_the_run_ends(registry: Registry, memory_runtime: Runtime):
    gate, reached = asyncio.Event(), []
    registry.add(two_stage_with_gate(gate, reached))
    run = await memory_runtime.start("gated", {"question": "q"})
    seen: list[str] = []

    async def watch() -> None:
        async for event in memory_runtime.follow(run.id):
            seen.append(event.kind)

    watcher = asyncio.create_task(watch())
    while "stage_started" not in seen:
        await asyncio.sleep(0.005)
    assert "run_finished" not in seen
    gate.set()
    await asyncio.wait_for(watcher, 5)
    assert seen[-1] == "run_finished" and seen.count("stage_finished") == 2


async def test_progress_and_token_events_reach_the_log(registry: Registry, llm, memory_runtime: Runtime):
    llm.reply = "three small words"
    wf = Workflow("talk", state=Doc)

    @wf.stage
    async def talk(s, ctx):
        ctx.emit("thinking", step=1)
        return {"route": await ctx.llm.text("say", tokens=True)}

    registry.add(wf)
    run = await memory_runtime.run("talk", {"question": "q"})
    events = memory_runtime.store.events(run.id)
    assert [e.data for e in events if e.kind == "progress"] == [{"message": "thinking", "step": 1}]
    assert "".join(e.data["text"] for e in events if e.kind == "token") == run.output["route"]


async def test_the_compiled_graph_can_be_extended_and_run_without_sloflow():
    wf = fan_branch_loop()
    graph = wf.graph()

    async def audit(state):
        return {"route": state.route + "+audited"}

    graph.add_node("audit", audit)
    graph.add_edge("short", "audit")
    out = await graph.compile().ainvoke({"question": "x"})
    assert out["route"] == "short+audited" and out["answers"] == ["X", "X", "X"]


class Plain(TypedDict, total=False):
    text: str
    steps: Annotated[list[str], operator.add]


async def test_an_existing_langgraph_graph_registers_as_a_workflow(registry: Registry, memory_runtime: Runtime):
    builder = StateGraph(Plain)

    async def upper(s):
        return {"text": s["text"].upper(), "steps": ["upper"]}

    async def exclaim(s):
        return {"text": s["text"] + "!", "steps": ["exclaim"]}

    builder.add_node("upper", upper)
    builder.add_node("exclaim", exclaim)
    builder.add_edge(START, "upper")
    builder.add_edge("upper", "exclaim")
    builder.add_edge("exclaim", END)
    registry.add(Workflow.from_graph("shout", builder.compile(), slo=10.0))
    run = await memory_runtime.run("shout", {"text": "hi"})
    assert run.status is RunStatus.succeeded, run.error
    assert run.output == {"text": "HI!", "steps": ["upper", "exclaim"]}
    assert [t["stage"] for t in run.stages] == ["upper", "exclaim"]
    assert run.deadline_met is True


class Verdict(BaseModel):
    ok: bool
    reason: str


async def test_llm_json_parses_into_the_schema_and_reports_bad_answers(registry: Registry, llm, memory_runtime: Runtime):
    wf = Workflow("judge", state=Doc)

    @wf.stage
    async def judge(s, ctx):
        verdict = await ctx.llm.json("judge this", schema=Verdict)
        return {"route": f"{verdict.ok}:{verdict.reason}"}

    registry.add(wf)
    llm.reply = '{"ok": true, "reason": "fine"}'
    good = await memory_runtime.run("judge", {"question": "q"})
    assert good.output["route"] == "True:fine"
    assert llm.calls[0][0].json_schema["required"] == ["ok", "reason"]
    llm.reply = "not json at all"
    bad = await memory_runtime.run("judge", {"question": "q"})
    assert bad.status is RunStatus.failed and bad.error["code"] == "backend_error"
    assert "stage 'judge'" in bad.error["message"]

    llm.reply, llm.finish_reason = '{"ok": true, "reason": "the answer went on and', "length"
    cut = await memory_runtime.run("judge", {"question": "q"})
    assert cut.status is RunStatus.failed and cut.error["code"] == "output_truncated"
    assert "max_tokens=512" in cut.error["message"] and "stage 'judge'" in cut.error["message"]
    llm.reply = '{"ok": false, "reason": "done just at the limit"}'  # complete although the limit was hit
    assert (await memory_runtime.run("judge", {"question": "q"})).output["route"] == "False:done just at the limit"


async def test_a_run_that_ends_after_its_deadline_is_recorded_as_missed(registry: Registry, memory_runtime: Runtime):
    wf = Workflow("late", state=Doc)

    @wf.stage
    async def dawdle(s, ctx):
        await asyncio.sleep(0.15)

    registry.add(wf)
    run = await memory_runtime.run("late", {"question": "q"}, slo=0.05)
    assert run.status is RunStatus.succeeded and run.deadline_met is False
    assert run.finished_at > run.deadline


async def test_an_extended_workflow_graph_keeps_deadlines_and_stage_events(registry: Registry, llm, memory_runtime: Runtime):
    wf = Workflow("base", state=Doc, slo=30.0)

    @wf.stage
    async def ask(s, ctx):
        return {"answers": [await ctx.llm.text(s.question)]}

    graph = wf.graph()

    async def audit(state):
        return {"route": "audited"}

    graph.add_node("audit", audit)
    graph.add_edge("ask", "audit")
    registry.add(Workflow.from_graph("extended", graph.compile(), slo=30.0))
    run = await memory_runtime.run("extended", {"question": "q"})
    assert run.status is RunStatus.succeeded, run.error
    assert run.output["route"] == "audited"
    assert llm.calls[0][1].deadline == run.deadline and llm.calls[0][1].stage == "ask"
    assert [t["stage"] for t in run.stages] == ["ask"]  # the stage's own events, not duplicated


async def test_cancelling_the_caller_of_run_cancels_the_run(registry: Registry, memory_runtime: Runtime):
    gate, reached = asyncio.Event(), []
    registry.add(two_stage_with_gate(gate, reached))
    caller = asyncio.create_task(memory_runtime.run("gated", {"question": "q"}))
    while not reached:
        await asyncio.sleep(0.005)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    (record,) = memory_runtime.store.runs()
    assert record.status is RunStatus.cancelled and "caller stopped" in record.error["message"]


async def test_the_run_deadline_cancels_the_llm_call_and_a_stage_may_answer_with_what_it_has(
    registry: Registry, llm, memory_runtime: Runtime
):
    wf = Workflow("hurried", state=Doc)

    @wf.stage
    async def think(s, ctx):
        try:
            return {"route": await ctx.llm.text("think long")}
        except DeadlineExceeded as exc:
            return {"route": "answered without the model", "parts": [exc.message]}

    registry.add(wf)
    llm.hold = True  # the call never returns by itself
    start = time.monotonic()
    run = await memory_runtime.run("hurried", {"question": "q"}, slo=0.3)
    assert time.monotonic() - start < 2.0
    assert run.status is RunStatus.succeeded and run.output["route"] == "answered without the model"
    assert "deadline exceeded at stage 'think'" in run.output["parts"][0]
    assert llm.withdrawn == 1  # cancelled where it was waiting, as the worker's call is
    assert run.deadline_met is False


async def test_a_stage_that_does_not_catch_the_deadline_fails_the_run_clearly(registry: Registry, llm, memory_runtime: Runtime):
    wf = Workflow("stubborn", state=Doc)

    @wf.stage
    async def first(s, ctx):
        return {"parts": ["kept only if the run finishes"]}

    @wf.stage
    async def think(s, ctx):
        return {"route": await ctx.llm.text("think long")}

    wf.then(first, think)
    registry.add(wf)
    llm.hold = True
    run = await memory_runtime.run("stubborn", {"question": "q"}, slo=0.3)
    assert run.status is RunStatus.failed and run.error["code"] == "deadline_exceeded"
    assert "deadline exceeded at stage 'think'" in run.error["message"]
    assert run.output is None  # nothing half-written
    llm.hold = False
    late = await memory_runtime.run("stubborn", {"question": "q"}, slo=1e-6)  # already past at the call
    assert late.status is RunStatus.failed and "deadline exceeded at stage" in late.error["message"]
