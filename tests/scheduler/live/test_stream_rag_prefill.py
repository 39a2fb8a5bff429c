"""stream_rag's speculative prefill on the live scheduler (emulated workers): background class, cancelled
when the guess changes, and the final call placed on the worker holding the prefix."""

from __future__ import annotations

import asyncio
import time

import pytest
import ray

from sloflow.llm.client import CallContext
from sloflow.llm.types import GenerateRequest
from sloflow.scheduler.live.client import SchedulerClient
from sloflow.workflows import MemoryRunStore, Registry, Runtime
from sloflow.workflows.builtin.stream_rag.prompts import answer_messages
from sloflow.workflows.builtin.stream_rag.workflow import stream_rag
from tests.scheduler.live.test_live import cluster, ctx, emulated, worker_holds
from tests.workflows.builtin.test_stream_rag import Index, type_turn

pytestmark = pytest.mark.usefixtures("ray_session")


def slow(label: str, prefill: float) -> object:
    spec = emulated(label, decode=0.01)
    return type(spec)(**{**spec.__dict__, "emulated": (prefill, 0.01, 0.0)})


async def recent(worker_id: str) -> list[dict]:
    return (await ray.get_actor(f"sloflow-worker-{worker_id}").state.remote())["recent"]


def runtime_on(dispatcher: object) -> tuple[Runtime, Index]:
    registry = Registry()
    registry.add(stream_rag)
    index = Index()
    return Runtime(MemoryRunStore(), None, client=SchedulerClient(dispatcher), registry=registry, tools={"retrieve": index.retrieve}), index


async def test_a_prefill_never_delays_a_deadline_call_waiting_on_its_worker() -> None:
    dispatcher, (w,) = await cluster(slow("prefilling", prefill=0.01))
    client = SchedulerClient(dispatcher)
    evidence = [{"chunk_id": f"p{i}", "doc_id": f"P{i}", "text": "words " * 150} for i in range(4)]
    t0 = time.monotonic()
    await client.generate(GenerateRequest(prompt="hi", max_tokens=10), ctx(30.0))
    alone_s = time.monotonic() - t0
    prefill = GenerateRequest(messages=answer_messages(evidence, "Which of these"), max_tokens=1)
    background = CallContext(run_id="r", workflow="stream_rag", stage="listen", prefix_key="guess")
    task = asyncio.ensure_future(client.generate(prefill, background))  # seconds of prefill in the only slot
    await worker_holds(w, queued=0, running=1)
    t0 = time.monotonic()
    await client.generate(GenerateRequest(prompt="hi", max_tokens=10), ctx(30.0))
    assert time.monotonic() - t0 < alone_s + 0.5
    task.cancel()


async def test_the_final_call_goes_to_the_worker_holding_the_prefilled_prefix() -> None:
    dispatcher, ids = await cluster(emulated("one", decode=0.01), emulated("two", decode=0.01))
    runtime, _ = runtime_on(dispatcher)
    done = await type_turn(runtime, {}, "Is Paris bigger than the city of Lyon today?", pause_s=0.1)
    assert done.output["prefill_hit"] is True, done.output
    where = {}
    for worker in ids:
        for entry in await recent(worker):
            where.setdefault(entry["max_tokens"], set()).add(worker)
    prefilled = {w for w in ids if any(e["max_tokens"] == 1 and e["ended"] == "done" for e in await recent(w))}
    assert where[48] <= prefilled and len(where[48]) == 1  # the answer ran where its prefix was prefilled


async def test_a_changed_guess_cancels_its_prefill_on_the_worker() -> None:
    dispatcher, (w,) = await cluster(slow("guessing", prefill=0.02))  # a prefill takes about 2 s
    runtime, _ = runtime_on(dispatcher)
    done = await type_turn(runtime, {}, "Is Paris bigger than the city of Lyon today?", pause_s=0.1)
    assert done.output["speculation"]["prefill_cancelled"] >= 1, done.output
    ends = [e["ended"] for e in await recent(w) if e["max_tokens"] == 1]
    assert ends[0] == "cancelled"  # the guess "Paris" alone changed to "Paris, Lyon" before its prefill ended
