"""Backends that fail: one that hangs, one that answers garbage, one that hangs up mid-answer.

Each is a real HTTP server on loopback misbehaving in one way, behind an `openai` worker that
looks fastest, so the dispatcher tries it first; the call must time out or fail there and finish
on the healthy worker (emulated, labelled: these tests are about failing over, not about text).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sloflow.errors import BackendError, InvalidRequest
from sloflow.llm.types import GenerateRequest, Message
from sloflow.scheduler.live.client import SchedulerClient
from sloflow.scheduler.live.worker import WorkerSpec
from sloflow.scheduler.policies.profile import WorkerProfile
from tests.conftest import serving
from tests.scheduler.live.test_live import cluster, ctx, emulated

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.faults]


async def _completions(request: Request) -> Response:
    mode = request.path_params["mode"]
    if mode == "hang":  # far past the worker's 1 s timeout, short enough not to hold up the server's shutdown
        await asyncio.sleep(8)
    if mode == "garbage":
        return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
    if mode == "refuse":  # what a server says of a request it cannot take, e.g. one past its context
        return Response('{"error": {"message": "the prompt exceeds the context"}}', status_code=400, media_type="application/json")

    async def cut_short() -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
        raise ConnectionResetError("the server went away")  # uvicorn drops the connection

    return StreamingResponse(cut_short(), media_type="text/event-stream")


FAULTY = Starlette(routes=[Route("/{mode}/v1/{kind:path}", _completions, methods=["POST"])])


@pytest.fixture(scope="module")
async def faulty_url() -> AsyncIterator[str]:
    async with serving(FAULTY) as port:
        yield f"http://127.0.0.1:{port}"


def faulty(base: str, mode: str) -> WorkerSpec:
    fast = WorkerProfile(f"{mode}-server", 0.0001, 0.0005, slots=4, context_tokens=4096)  # looks like the best worker
    return WorkerSpec("openai", "faulty", base_url=f"{base}/{mode}/v1", slots=4, timeout_s=1.0, num_cpus=0, profile=fast)


@pytest.mark.parametrize("mode", ["hang", "garbage", "close"])
async def test_a_failing_backend_times_out_and_its_calls_fail_over(faulty_url: str, mode: str) -> None:
    dispatcher, (bad, good) = await cluster(faulty(faulty_url, mode), emulated("healthy", slots=4, decode=0.05))
    client = SchedulerClient(dispatcher)
    messages = [Message(role="user", content="Say hello.")]
    calls = [client.generate(GenerateRequest(messages=messages, max_tokens=5), ctx(60.0)) for _ in range(4)]
    outs = await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert [o.model for o in outs] == ["emulated:healthy"] * 4 and all(o.completion_tokens == 5 for o in outs)
    assert (await dispatcher.stats.remote())["redispatched"] >= 1  # the faulty worker was tried first
    # A streamed call fails over as well; the healthy worker answers it once.
    chunks = [c async for c in client.stream(GenerateRequest(prompt="Say hello.", max_tokens=5), ctx(60.0))]
    assert chunks[-1].completion is not None and chunks[-1].completion.model == "emulated:healthy"
    assert {w["id"] for w in await dispatcher.workers.remote()} == {bad, good}  # a failing backend is no dead actor


async def test_a_call_no_worker_could_answer_says_why_for_each(faulty_url: str) -> None:
    dispatcher, (hang, garbage) = await cluster(faulty(faulty_url, "hang"), faulty(faulty_url, "garbage"))
    with pytest.raises(BackendError) as err:
        await SchedulerClient(dispatcher).generate(GenerateRequest(prompt="hi", max_tokens=3), ctx(60.0))
    message = err.value.message
    assert "failed on every worker" in message and "timed out" in message and "not a completion" in message
    assert set(err.value.details["failed"]) == {hang, garbage}
    json.dumps(err.value.details)  # JSON-safe, as the API answers it


async def test_a_request_the_backend_refuses_reaches_the_caller_without_failing_over(faulty_url: str) -> None:
    # Two workers that both refuse: failing over would try the second, and end in a BackendError.
    dispatcher, _ = await cluster(faulty(faulty_url, "refuse"), faulty(faulty_url, "refuse"))
    with pytest.raises(InvalidRequest, match=r"refused the request \(400\)"):
        await SchedulerClient(dispatcher).generate(GenerateRequest(prompt="hi", max_tokens=3), ctx(60.0))
    assert (await dispatcher.stats.remote())["redispatched"] == 0
