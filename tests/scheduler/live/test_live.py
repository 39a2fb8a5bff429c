"""The live scheduler on a real loopback Ray: real actors, emulated and real llama.cpp workers."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace
from pathlib import Path

import pytest
import ray

from sloflow.errors import DeadlineExceeded
from sloflow.llm.client import CallContext
from sloflow.llm.types import GenerateRequest, Message
from sloflow.scheduler.live.client import SchedulerClient
from sloflow.scheduler.live.dispatcher import start_dispatcher, start_scheduler
from sloflow.scheduler.live.worker import WorkerSpec
from sloflow.scheduler.policies.profile import WorkerProfile

pytestmark = pytest.mark.usefixtures("ray_session")
_ids = itertools.count()


def emulated(label: str, slots: int = 1, decode: float = 0.01) -> WorkerSpec:
    # Declared profiles skip the measuring pass: these tests are about placement, not speed.
    profile = WorkerProfile(f"emulated:{label}", 0.0005, decode, slots=slots, context_tokens=4096)
    return WorkerSpec("emulated", label, slots=slots, emulated=(0.0005, decode, 0.0), num_cpus=0, profile=profile)


def ctx(seconds: float | None = 30.0, **kw) -> CallContext:
    return CallContext(run_id="r", workflow="test", stage="s", deadline=None if seconds is None else time.time() + seconds, **kw)


def req(tokens: int = 10, prompt: str = "hello " * 20) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, max_tokens=tokens)


async def cluster(*specs: WorkerSpec) -> tuple[object, list[str]]:
    n = next(_ids)
    ids = [f"t{n}-{i}" for i in range(len(specs))]
    dispatcher = await asyncio.to_thread(start_scheduler, dict(zip(ids, specs)), name=f"sloflow-dispatcher-test{n}")
    return dispatcher, ids


async def test_client_places_calls_and_prefers_the_faster_worker() -> None:
    dispatcher, _ = await cluster(emulated("quick", decode=0.002), emulated("sluggish", decode=0.05))
    client = SchedulerClient(dispatcher)
    out = await client.generate(req(), ctx())
    assert out.model == "emulated:quick" and out.completion_tokens == 10
    chunks = [c async for c in client.stream(req(32), ctx())]
    assert len(chunks) > 3  # piece by piece, not the whole text at once
    assert chunks[-1].completion is not None and "".join(c.text for c in chunks[:-1]) == chunks[-1].completion.text
    with pytest.raises(DeadlineExceeded):
        await client.generate(req(), ctx(-1.0))
    # Workflows size their work to the workers' measured speed: the slower of two, or one model's.
    both = await client.speed()
    assert both is not None and (both.prefill_tok_s, both.decode_tok_s) == pytest.approx((2000.0, 20.0))
    assert (await client.speed("emulated:quick")).decode_tok_s == pytest.approx(500.0)
    assert await client.speed("no-such-model") is None


@pytest.mark.faults
async def test_killed_worker_loses_no_call_and_answers_none_twice() -> None:
    dispatcher, (a, b) = await cluster(emulated("a", slots=2, decode=0.01), emulated("b", slots=2, decode=0.01))
    client = SchedulerClient(dispatcher)
    calls = [client.generate(req(20), ctx(60.0)) for _ in range(24)]
    tasks = [asyncio.ensure_future(c) for c in calls]
    await asyncio.sleep(0.5)  # under load: both workers hold running and queued calls
    ray.kill(ray.get_actor(f"sloflow-worker-{a}"))
    outs = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert len(outs) == 24 and all(o.completion_tokens == 20 for o in outs)
    assert [w["id"] for w in await dispatcher.workers.remote()] == [b]
    assert (await dispatcher.stats.remote())["redispatched"] >= 1


async def test_workers_can_be_added_drained_and_removed_while_serving() -> None:
    dispatcher, (a,) = await cluster(emulated("first", decode=0.01))
    client = SchedulerClient(dispatcher)
    busy = [asyncio.ensure_future(client.generate(req(10), ctx())) for _ in range(6)]
    await dispatcher.add_worker.remote(f"{a}-late", emulated("second", decode=0.01))
    later = [asyncio.ensure_future(client.generate(req(10), ctx())) for _ in range(6)]
    await dispatcher.remove.remote(a)  # waits for the calls it holds, then stops it
    outs = await asyncio.gather(*busy, *later)
    assert len(outs) == 12
    assert [w["id"] for w in await dispatcher.workers.remote()] == [f"{a}-late"]
    out = await client.generate(req(), ctx())
    assert out.model == "emulated:second"
    with pytest.raises(ValueError):  # the actor is gone, not just unused
        ray.get_actor(f"sloflow-worker-{a}")


async def test_workers_keep_the_order_they_were_added_in_not_the_order_they_became_ready() -> None:
    # Round-robin's turn and HEXGEN's base worker read this order; the simulator lists workers as given.
    n = next(_ids)
    dispatcher = start_dispatcher(name=f"sloflow-dispatcher-test{n}")
    slow = replace(emulated("measured"), profile=None)  # measures its profile first: ready later
    ids = [f"t{n}-slow", f"t{n}-quick"]
    first = dispatcher.add_worker.remote(ids[0], slow)
    while True:  # Ray does not order an async actor's calls: let the first one begin before the second
        try:
            ray.get_actor(f"sloflow-worker-{ids[0]}")
            break
        except ValueError:
            await asyncio.sleep(0.02)
    await asyncio.gather(first, dispatcher.add_worker.remote(ids[1], emulated("declared")))
    assert [w["id"] for w in await dispatcher.workers.remote()] == ids


async def worker_holds(worker_id: str, queued: int, running: int, timeout_s: float = 30.0) -> None:
    """Wait until the worker's queue and slots hold these many calls (the machine may be loaded)."""
    start = time.monotonic()
    while True:
        state = await ray.get_actor(f"sloflow-worker-{worker_id}").state.remote()
        if (len(state["queued"]), len(state["running"])) == (queued, running):
            return
        assert time.monotonic() - start < timeout_s, f"worker {worker_id} holds {state}"
        await asyncio.sleep(0.02)


async def test_background_calls_wait_for_deadline_calls() -> None:
    dispatcher, (w,) = await cluster(emulated("only", decode=0.01))
    client = SchedulerClient(dispatcher)
    finished: list[str] = []

    async def run(kind: str, c: CallContext, tokens: int = 10) -> None:
        await client.generate(req(tokens), c)
        finished.append(kind)

    first = asyncio.ensure_future(run("first", ctx(60.0), tokens=300))  # 3 s in the single slot
    await worker_holds(w, queued=0, running=1)
    background = [asyncio.ensure_future(run("background", ctx(None))) for _ in range(3)]
    await worker_holds(w, queued=3, running=1)
    urgent = asyncio.ensure_future(run("urgent", ctx(60.0)))
    await asyncio.gather(first, urgent, *background)
    assert finished.index("urgent") == 1  # next after the call that held the slot, ahead of every background call


async def test_a_running_background_call_never_delays_a_deadline_call() -> None:
    """Slow backend (20 ms a token): the deadline call preempts the 6 s background call holding the only slot."""
    dispatcher, (w,) = await cluster(emulated("slow", decode=0.02))
    client = SchedulerClient(dispatcher)
    t0 = time.monotonic()
    await client.generate(req(10), ctx(30.0))
    alone_s = time.monotonic() - t0
    background = asyncio.ensure_future(client.generate(req(300), ctx(None)))
    await worker_holds(w, queued=0, running=1)
    await asyncio.sleep(0.5)  # well into its generation
    t0 = time.monotonic()
    urgent = await client.generate(req(10), ctx(30.0))
    beside_s = time.monotonic() - t0
    assert urgent.completion_tokens == 10
    assert beside_s < alone_s + 0.5, (alone_s, beside_s)  # not the 5.5 s the background call had left
    assert not background.done()
    done = await asyncio.wait_for(background, 30)
    assert done.completion_tokens == 300  # started over once the worker was idle, and finished
    recent = (await ray.get_actor(f"sloflow-worker-{w}").state.remote())["recent"]
    assert [e["ended"] for e in recent[-3:]] == ["preempted", "done", "done"]


async def test_a_call_goes_to_the_worker_that_holds_its_prompt_prefix() -> None:
    dispatcher, _ = await cluster(emulated("cold", decode=0.01), emulated("warm", decode=0.01))
    client = SchedulerClient(dispatcher)
    evidence = [Message(role="system", content="evidence " * 400), Message(role="user", content="question one")]
    blocker = asyncio.ensure_future(client.generate(req(60), ctx()))  # occupies the first worker
    await asyncio.sleep(0.1)
    first = await client.generate(GenerateRequest(messages=evidence, max_tokens=5), ctx(prefix_key="evidence"))
    await blocker
    evidence[-1] = Message(role="user", content="question two")
    again = await client.generate(GenerateRequest(messages=evidence, max_tokens=5), ctx(prefix_key="evidence"))
    assert first.model == again.model == "emulated:warm"
    assert again.ttft_s < first.ttft_s / 3


@pytest.mark.model
@pytest.mark.faults
async def test_real_llama_cpp_workers_are_profiled_and_serve_through_the_scheduler(test_model_path: Path) -> None:
    spec = WorkerSpec(
        "embedded", str(test_model_path), threads=1, context_tokens=1024, num_cpus=0.5, probe_words=(8, 40, 80), lend_idle_cores=True
    )
    dispatcher, ids = await cluster(spec)
    (measured,) = await dispatcher.workers.remote()
    p = measured["profile"]
    assert p.source == "measured" and p.slots == 1 and p.context_tokens == 1024
    assert 0 < p.prefill_s_per_token < 0.1 and 0 < p.decode_s_per_token < 0.5  # 1 thread, shared cores
    # A second copy of the same worker reuses the profile instead of measuring again.
    ids.append(f"{ids[0]}-twin")
    await dispatcher.add_worker.remote(ids[1], replace(spec, profile=p))
    client = SchedulerClient(dispatcher)
    messages = [Message(role="system", content="You are terse."), Message(role="user", content="Say hi.")]
    calls = [
        asyncio.ensure_future(client.generate(GenerateRequest(messages=messages, max_tokens=16), ctx(120.0, prefix_key="sys")))
        for _ in range(6)
    ]
    await asyncio.sleep(0.3)
    ray.kill(ray.get_actor(f"sloflow-worker-{ids[0]}"))  # a real llama.cpp actor dies under load
    outs = await asyncio.wait_for(asyncio.gather(*calls), 120)
    assert len(outs) == 6 and all(o.completion_tokens >= 1 for o in outs)
    assert [w["id"] for w in await dispatcher.workers.remote()] == [ids[1]]
    streamed = [c async for c in client.stream(GenerateRequest(messages=messages, max_tokens=16), ctx(60.0))]
    assert len(streamed) > 2 and streamed[-1].completion is not None


def test_chat_context_carries_deadline_and_priority() -> None:
    from sloflow.llm.client import request_context

    c = request_context(deadline_s=5.0)
    assert c.priority == "interactive" and 4.0 < c.remaining_s() <= 5.0
    assert request_context(priority="background", deadline_s=5.0).deadline is None


async def test_metrics_reach_ray_metrics_export() -> None:
    import httpx

    dispatcher, _ = await cluster(emulated("metered"))
    client = SchedulerClient(dispatcher)
    await asyncio.gather(*(client.generate(req(), CallContext(workflow="metered-flow", deadline=time.time() + 30)) for _ in range(3)))
    port = ray.nodes()[0]["MetricsExportPort"]
    wanted = [
        'ray_sloflow_slo_attainment{',
        'ray_sloflow_calls_total{',
        "ray_sloflow_call_latency_seconds_count{",
        "ray_sloflow_queue_wait_seconds_count{",
        "ray_sloflow_queue_length{",
        "ray_sloflow_tokens_per_second{",
        "ray_sloflow_calls_served_total{",
    ]
    text = ""
    async with httpx.AsyncClient() as http:
        for _ in range(40):  # Ray exports every few seconds
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            if all(w in text for w in wanted) and 'workflow="metered-flow"' in text:
                break
            await asyncio.sleep(1)
    missing = [w for w in wanted if w not in text]
    assert not missing and 'workflow="metered-flow"' in text


def test_worker_spec_declares_its_ray_resources() -> None:
    spec = WorkerSpec("openai", "llama-3.1-70b", base_url="http://127.0.0.1:9/v1", slots=16, num_cpus=2, num_gpus=1, accelerator="A100")
    opts = spec.actor_options("sloflow-worker-a100")
    assert opts["num_cpus"] == 2 and opts["num_gpus"] == 1 and opts["name"] == "sloflow-worker-a100"
    assert opts["resources"] == {"accelerator_type:A100": 0.001}


async def test_a_runs_llm_calls_are_events_with_worker_and_time_split() -> None:
    from pydantic import BaseModel

    from sloflow import Workflow
    from sloflow.workflows import MemoryRunStore, Registry, Runtime

    class Q(BaseModel):
        q: str
        a: str = ""

    wf = Workflow("timed", state=Q, slo=30.0)

    @wf.stage
    async def answer(s, ctx):
        return {"a": await ctx.llm.text(s.q, max_tokens=6)}

    registry = Registry()
    registry.add(wf.then(answer))
    dispatcher, ids = await cluster(emulated("timed-a"), emulated("timed-b"))
    runtime = Runtime(MemoryRunStore(), None, client=SchedulerClient(dispatcher), registry=registry)
    run = await runtime.run("timed", {"q": "hi"})
    (call,) = [e for e in runtime.store.events(run.id) if e.kind == "llm_call"]
    assert call.stage == "answer" and call.data["worker"] in ids and call.data["completion_tokens"] == 6
    assert call.data["queue_s"] >= 0 and call.data["prefill_s"] > 0 and call.data["decode_s"] > 0
