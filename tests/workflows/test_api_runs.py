"""The workflow and run endpoints, on an app built from the runs router alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from sloflow.api.auth import OpenAccess
from sloflow.api.errors import install_error_handlers
from sloflow.api.runs import router
from sloflow.workflows import Registry, Runtime, Workflow
from tests.conftest import serving


class Ask(BaseModel):
    question: str
    answer: str = ""


def ask_workflow(gate: asyncio.Event) -> Workflow:
    wf = Workflow("ask", state=Ask, slo=30.0, description="answer a question")

    @wf.stage
    async def think(s, ctx):
        ctx.emit("thinking")
        return {}

    @wf.stage
    async def reply(s, ctx):
        await gate.wait()
        return {"answer": await ctx.llm.text(s.question)}

    return wf.then(think, reply)


@pytest.fixture
def gate() -> asyncio.Event:
    opened = asyncio.Event()
    opened.set()
    return opened


@pytest.fixture
async def client(memory_runtime: Runtime, registry: Registry, gate: asyncio.Event) -> AsyncIterator[httpx.AsyncClient]:
    registry.add(ask_workflow(gate))
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.runtime = memory_runtime
    app.state.auth = OpenAccess()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


def sse(text: str) -> list[dict]:
    """Parse an SSE body into events with id, event and JSON data."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in fields:
            out.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return out


async def test_list_workflows_shows_stages_slo_and_input_schema(client: httpx.AsyncClient):
    r = await client.get("/v1/workflows")
    assert r.status_code == 200
    (wf,) = r.json()["workflows"]
    assert wf["name"] == "ask" and wf["slo"] == 30.0 and wf["stages"] == ["think", "reply"]
    assert wf["input_schema"]["required"] == ["question"]


async def test_create_and_wait_returns_the_finished_run(client: httpx.AsyncClient, llm):
    llm.reply = "42"
    r = await client.post("/v1/workflows/ask/runs?wait=true", json={"input": {"question": "why?"}, "slo": 5})
    assert r.status_code == 200
    run = r.json()
    assert run["status"] == "succeeded" and run["output"] == {"question": "why?", "answer": "42"}
    assert run["slo_s"] == 5 and run["deadline_met"] is True
    assert [s["stage"] for s in run["stages"]] == ["think", "reply"]
    assert (await client.get(f"/v1/runs/{run['id']}")).json()["status"] == "succeeded"


async def test_create_without_wait_answers_202_then_the_run_finishes(client: httpx.AsyncClient, memory_runtime: Runtime):
    r = await client.post("/v1/workflows/ask/runs", json={"input": {"question": "q"}})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    await memory_runtime.wait(r.json()["id"])
    assert (await client.get(f"/v1/runs/{r.json()['id']}")).json()["status"] == "succeeded"


async def test_bad_input_is_422_naming_the_field_and_unknown_names_404(client: httpx.AsyncClient):
    r = await client.post("/v1/workflows/ask/runs", json={"input": {"question": ["not", "text"]}})
    assert r.status_code == 422
    assert r.json()["details"]["fields"][0]["field"] == "question" and "question" in r.json()["message"]
    r = await client.post("/v1/workflows/ask/runs", json={"input": {}, "slo": -1})
    assert r.status_code == 422 and "slo" in r.json()["message"]
    r = await client.post("/v1/workflows/nope/runs", json={"input": {}})
    assert r.status_code == 404 and "nope" in r.json()["message"]
    assert (await client.get("/v1/runs/missing")).status_code == 422  # not a run id
    assert (await client.get("/v1/runs/" + "0" * 32)).status_code == 404
    assert (await client.get("/v1/runs/" + "0" * 32 + "/events")).status_code == 404


async def test_events_stream_with_ids_and_resume_from_last_event_id(client: httpx.AsyncClient):
    run = (await client.post("/v1/workflows/ask/runs?wait=true", json={"input": {"question": "q"}})).json()
    everything = sse((await client.get(f"/v1/runs/{run['id']}/events")).text)
    assert [e["id"] for e in everything] == list(range(1, len(everything) + 1))
    assert everything[0]["event"] == "run_started" and everything[-1]["event"] == "run_finished"
    assert (everything[2]["event"], everything[2]["data"]["stage"]) == ("progress", "think")
    resumed = sse((await client.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": "4"})).text)
    assert resumed == everything[4:]
    r = await client.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": "x"})
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["message"]


async def test_cancel_a_running_run_then_cancel_again_conflicts(client: httpx.AsyncClient, memory_runtime: Runtime, gate):
    gate.clear()
    run = (await client.post("/v1/workflows/ask/runs", json={"input": {"question": "q"}})).json()
    while not any(e.stage == "reply" for e in memory_runtime.store.events(run["id"])):
        await asyncio.sleep(0.01)
    r = await client.post(f"/v1/runs/{run['id']}/cancel")
    assert r.status_code == 202
    gate.set()
    done = await memory_runtime.wait(run["id"])
    assert done.status == "cancelled"
    r = await client.post(f"/v1/runs/{run['id']}/cancel")
    assert r.status_code == 409 and "already cancelled" in r.json()["message"]


async def test_a_live_event_stream_resumes_after_reconnecting_with_last_event_id(
    memory_runtime: Runtime, registry: Registry, gate: asyncio.Event
):
    registry.add(ask_workflow(gate))
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.runtime = memory_runtime
    app.state.auth = OpenAccess()
    async with serving(app) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            gate.clear()  # the run waits in its second stage while the client comes and goes
            run = (await http.post("/v1/workflows/ask/runs", json={"input": {"question": "q"}})).json()
            first: list[dict] = []
            async with http.stream("GET", f"/v1/runs/{run['id']}/events") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("id: "):
                        first.append({"id": int(line[4:])})
                    elif line.startswith("event: "):
                        first[-1]["event"] = line[7:]
                        if line[7:] == "stage_started" and len(first) > 3:
                            break  # hang up mid-run, while the run is still going
            assert memory_runtime.get(run["id"]).status == "running"
            gate.set()
            resumed = await http.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": str(first[-1]["id"])})
            rest = sse(resumed.text)
        ids = [e["id"] for e in first] + [e["id"] for e in rest]
        assert ids == list(range(1, len(ids) + 1))  # no event lost or repeated across the reconnect
        assert rest[-1]["event"] == "run_finished" and rest[-1]["data"]["data"]["status"] == "succeeded"
