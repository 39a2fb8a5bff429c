"""Faults on the live scheduler with real llama.cpp workers: cancelled calls (by the caller, an
HTTP client hanging up, a cancelled run) and a worker dying mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import ray
from pydantic import BaseModel

from sloflow import Workflow
from sloflow.api.app import create_app
from sloflow.llm.types import Chunk, GenerateRequest, Message
from sloflow.scheduler.live.client import SchedulerClient
from sloflow.scheduler.live.worker import WorkerSpec
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.workflows import MemoryRunStore, Registry, RunStatus, Runtime
from tests.conftest import serving
from tests.scheduler.live.test_live import cluster, ctx

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.model]


def llama(path: Path) -> WorkerSpec:
    # A declared profile skips the measuring pass; these tests are about faults, not speed.
    profile = WorkerProfile("smollm2", 0.002, 0.02, slots=1, context_tokens=1024)
    return WorkerSpec("embedded", str(path), threads=1, context_tokens=1024, num_cpus=0.5, profile=profile)


def long_request(tokens: int = 900) -> GenerateRequest:
    # ignore_eos: the model cannot end early, so only a cancel can stop it before `tokens`.
    return GenerateRequest(prompt="Count from 1 to 1000: 1, 2, 3,", max_tokens=tokens, ignore_eos=True)


async def state(worker_id: str) -> dict:
    return await ray.get_actor(f"sloflow-worker-{worker_id}").state.remote()


# Only a bound against hanging: whether a cancel worked is read from how the worker says the call
# ended (`cancelled`, not `done` after all its tokens), which holds however slow the machine is.
HANG_S = 120.0


async def until(worker_id: str, holds: str, what: bool, timeout_s: float = HANG_S) -> float:
    """Seconds until the worker holds some (`what`) or no calls `holds` ("queued", "running")."""
    start = time.monotonic()
    while bool((s := await state(worker_id))[holds]) != what:
        assert time.monotonic() - start < timeout_s, f"worker {worker_id} still holds {s}"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def until_idle(worker_id: str) -> list[str | None]:
    """Wait until the worker holds no call, queued or running; how its recent calls ended, oldest first."""
    await until(worker_id, "queued", False)
    await until(worker_id, "running", False)
    return [r["ended"] for r in (await state(worker_id))["recent"]]


async def test_cancelled_calls_leave_the_worker_and_free_its_slot(test_model_path: Path) -> None:
    dispatcher, (w,) = await cluster(llama(test_model_path))
    client = SchedulerClient(dispatcher)
    running = asyncio.ensure_future(client.generate(long_request(), ctx(120.0)))
    await until(w, "running", True)
    queued = asyncio.ensure_future(client.generate(long_request(), ctx(120.0)))
    await until(w, "queued", True)

    queued.cancel()  # waiting in the worker's queue: withdrawn from it
    await until(w, "queued", False)
    assert len((await state(w))["running"]) == 1
    running.cancel()  # generating: llama.cpp stops at its next token and the slot is freed
    assert await until_idle(w) == ["cancelled", "cancelled"]
    for task in (running, queued):
        with pytest.raises(asyncio.CancelledError):
            await task

    (view,) = await dispatcher.workers.remote()
    assert view["queued"] == view["running"] == 0
    start = time.monotonic()
    out = await client.generate(GenerateRequest(prompt="Say hi.", max_tokens=8), ctx())
    # Had the cancelled generation kept its thread, this would wait behind its 900 tokens.
    assert out.completion_tokens >= 1 and time.monotonic() - start < 10


async def test_a_stream_the_reader_abandons_stops_on_its_worker(test_model_path: Path) -> None:
    dispatcher, (w,) = await cluster(llama(test_model_path))
    client = SchedulerClient(dispatcher)
    stream = client.stream(long_request(), ctx(120.0))
    pieces = [await anext(stream) for _ in range(3)]
    assert all(p.text for p in pieces)
    await stream.aclose()  # what a server does when its client hangs up mid-stream
    assert await until_idle(w) == ["cancelled"]
    out = await client.generate(GenerateRequest(prompt="Say hi.", max_tokens=8), ctx())
    assert out.completion_tokens >= 1


async def test_a_stream_continues_on_another_worker_when_its_worker_dies(test_model_path: Path) -> None:
    dispatcher, ids = await cluster(llama(test_model_path), llama(test_model_path))
    client = SchedulerClient(dispatcher)
    messages = [Message(role="user", content="Write a short story about a lighthouse keeper.")]
    request = GenerateRequest(messages=messages, max_tokens=80, ignore_eos=True)
    chunks: list[Chunk] = []
    async for chunk in client.stream(request, ctx(120.0)):
        chunks.append(chunk)
        if len(chunks) == 8:  # mid-stream: kill the real actor generating it
            (victim,) = [w for w in ids if (await state(w))["running"]]
            ray.kill(ray.get_actor(f"sloflow-worker-{victim}"))
    before = "".join(c.text for c in chunks[:8])

    completions = [c.completion for c in chunks if c.completion is not None]
    assert len(completions) == 1 and chunks[-1].completion is completions[0]  # exactly one, at the end
    pieces = [c.text for c in chunks[:-1]]
    text = "".join(pieces)
    assert completions[0].text == text and text.startswith(before) and len(text) > len(before)
    # What the second worker was asked (not what it said): continue after exactly the text the
    # client already had, with the tokens left.
    (survivor,) = [w for w in ids if w != victim]
    (asked,) = [r for r in (await state(survivor))["recent"] if r["answer_prefix"]]
    sent = asked["answer_prefix"]
    assert sent.startswith(before) and text.startswith(sent) and len(text) > len(sent)
    assert asked["max_tokens"] < request.max_tokens
    # No piece sent twice: the dead worker's pieces make up exactly that prefix, the rest follow it.
    assert any("".join(pieces[:i]) == sent for i in range(8, len(pieces)))
    assert completions[0].completion_tokens <= request.max_tokens + 8  # the sent tokens are estimated
    assert [w["id"] for w in await dispatcher.workers.remote()] == [survivor]
    assert (await dispatcher.stats.remote())["redispatched"] >= 1


async def test_a_cancelled_embedded_generation_stops_decoding(small_llm) -> None:
    # The worker frees its slot on cancel either way; this checks llama.cpp itself stopped, since
    # an instance still decoding in its thread would be handed to the next call while in use.
    job = asyncio.ensure_future(small_llm.generate(long_request(400)))
    await asyncio.sleep(0.5)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    held = [len(p) for p in small_llm.cached_prefixes()]
    await asyncio.sleep(0.5)
    assert [len(p) for p in small_llm.cached_prefixes()] == held  # nothing decodes any more
    assert max(held) < 200  # stopped long before its 400 tokens
    out = await small_llm.generate(GenerateRequest(prompt="Say hi.", max_tokens=4))
    assert out.completion_tokens >= 1


@contextlib.asynccontextmanager
async def chat_server(dispatcher: object) -> AsyncIterator[str]:
    """sloflow's API over the scheduler, served by uvicorn on loopback in this event loop."""
    async with serving(create_app(SchedulerClient(dispatcher), ["smollm2"], open_access=True)) as port:
        yield f"http://127.0.0.1:{port}"


async def test_a_chat_client_that_hangs_up_frees_the_worker(test_model_path: Path) -> None:
    dispatcher, (w,) = await cluster(llama(test_model_path))
    # The grammar admits no end before 1000 numbers, so whatever the model writes, only a hang-up
    # ends the call before its 900 tokens.
    endless = {"type": "array", "items": {"type": "integer"}, "minItems": 1000}
    body = {"messages": [{"role": "user", "content": "Count from 1 to 1000."}], "max_tokens": 900,
            "response_format": {"type": "json_object", "schema": endless}}
    async with chat_server(dispatcher) as url, httpx.AsyncClient(base_url=url) as http:
        plain = asyncio.ensure_future(http.post("/v1/chat/completions", json=body, timeout=60))
        await until(w, "running", True)
        plain.cancel()  # closes the connection: the server sees the client go
        assert await until_idle(w) == ["cancelled"]

        async with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}, timeout=60) as resp:
            lines = resp.aiter_lines()
            while "content" not in await anext(lines):
                pass
        assert await until_idle(w) == ["cancelled", "cancelled"]
        out = await http.post("/v1/chat/completions", json={**body, "max_tokens": 4}, timeout=60)
        assert out.status_code == 200 and out.json()["usage"]["completion_tokens"] >= 1


class Counting(BaseModel):
    answer: str = ""


async def test_cancelling_a_workflow_run_stops_its_llm_call_on_the_worker(test_model_path: Path) -> None:
    dispatcher, (w,) = await cluster(llama(test_model_path))
    wf = Workflow("counts", state=Counting, slo=120.0)

    @wf.stage
    async def count(s, ctx):
        return {"answer": (await ctx.llm.generate(long_request())).text}

    registry = Registry()
    registry.add(wf)
    runtime = Runtime(MemoryRunStore(), None, client=SchedulerClient(dispatcher), registry=registry)
    run = await runtime.start("counts", {})
    await until(w, "running", True)
    await runtime.cancel(run.id)  # withdraws the stage's pending ctx.llm call
    assert (await asyncio.wait_for(runtime.wait(run.id), HANG_S)).status is RunStatus.cancelled
    assert await until_idle(w) == ["cancelled"]
