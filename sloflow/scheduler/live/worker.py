"""One LLM worker as an async Ray actor: its backend, its local urgency queue and its slots.

The dispatcher sends every call with `run`; the call waits in the local queue until the queue
policy picks it and a slot (and KV room) is free, then runs on the backend. A queued call can be
taken back with `withdraw` (re-dispatch). A `ray.cancel` of `run` or `stream` reaches the call as
asyncio cancellation: a queued call leaves the queue, a running one stops its backend and frees
its slot. Workers declare their Ray resources so that on a real cluster they land on nodes with
the right accelerator.

Background calls (no deadline) are preempted: when a deadline call waits without a free slot
while a background call placed with `run` holds one, that generation is stopped (llama.cpp at its
next token) and the background call queues again, to start over once no deadline call waits. So a
deadline call waits for a background one only as long as stopping a generation takes; the
background call loses the tokens it had generated. Streamed background calls are not preempted
(their text is already out), so sloflow places background work with `run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ray

from sloflow.errors import ConfigError
from sloflow.llm.backend import Backend
from sloflow.llm.spare_cores import SpareCores
from sloflow.llm.types import Chunk, Completion, GenerateRequest
from sloflow.scheduler.live.metrics import WorkerMetrics
from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.profile import WorkerProfile, measure_profile
from sloflow.scheduler.policies.queueing import QUEUE_POLICIES, next_call
from sloflow.scheduler.policies.view import WorkerView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker runs and what it needs from Ray; `profile` skips the measuring pass."""

    kind: Literal["embedded", "openai", "emulated"]
    model: str  # embedded model name or .gguf path, served model name, or emulated label
    slots: int = 1
    threads: int = 1
    context_tokens: int = 2048
    models_dir: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 120.0  # an openai backend's per-request timeout: a hung server fails over
    # Emulated speed: prefill and decode seconds per token and a fixed overhead per call.
    emulated: tuple[float, float, float] = (0.001, 0.01, 0.0)
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    accelerator: str | None = None  # e.g. "A100": needs the Ray resource accelerator_type:A100
    resources: tuple[tuple[str, float], ...] = ()  # other Ray custom resources, as (name, amount)
    profile: WorkerProfile | None = None
    # Embedded: run each batch on sibling workers' idle cores too (`sloflow.llm.spare_cores`).
    lend_idle_cores: bool = False
    probe_words: tuple[int, ...] = (16, 96, 192)  # prompt sizes of the profiling pass

    def custom_resources(self) -> dict[str, float]:
        """The Ray custom resources the actor needs: `resources` plus its accelerator type."""
        needs = dict(self.resources)
        if self.accelerator:
            needs[f"accelerator_type:{self.accelerator}"] = 0.001
        return needs

    def needs(self) -> dict[str, float]:
        """Every Ray resource the actor needs, by Ray's names (CPU, GPU, custom ones); none of zero."""
        needs = {"CPU": self.num_cpus, "GPU": self.num_gpus, **self.custom_resources()}
        return {k: v for k, v in needs.items() if v > 0}

    def fits_node(self, node_resources: dict[str, float]) -> bool:
        """Whether a node with these total resources could ever hold this worker."""
        return all(node_resources.get(k, 0.0) >= v for k, v in self.needs().items())

    def actor_options(self, name: str) -> dict[str, Any]:
        """Ray options that place the actor: CPUs, GPUs, accelerator type, and its name."""
        opts: dict[str, Any] = {"name": name, "num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "max_restarts": 0}
        if needs := self.custom_resources():
            opts["resources"] = needs
        return opts

    def open(self) -> Backend:
        """Build the backend this spec describes (inside the worker process)."""
        if self.kind == "embedded":
            from sloflow.config import get_settings
            from sloflow.llm.embedded import EmbeddedBackend

            models_dir = Path(self.models_dir) if self.models_dir else get_settings().home / "models"
            return EmbeddedBackend(
                self.model,
                models_dir=models_dir,
                threads=self.threads,
                context_tokens=self.context_tokens,
                instances=self.slots,
                lend_idle_cores=self.lend_idle_cores,
            )
        if self.kind == "openai":
            from sloflow.llm.openai_http import OpenAIBackend

            if not self.base_url:
                raise ConfigError("an openai worker needs base_url")
            return OpenAIBackend(self.base_url, self.model, api_key=self.api_key, timeout_s=self.timeout_s)
        if self.kind == "emulated":
            from sloflow.llm.emulated import EmulatedBackend

            prefill, decode, overhead = self.emulated
            return EmulatedBackend(
                self.model, prefill_s_per_token=prefill, decode_s_per_token=decode, overhead_s=overhead, slots=self.slots
            )
        raise ConfigError(f"unknown worker kind {self.kind!r}; use embedded, openai or emulated")


@dataclass(frozen=True)
class Outcome:
    """What `run` returns: the completion (None if the call was withdrawn) and the prefixes now held."""

    completion: Completion | None
    held_prefixes: tuple[str, ...]


class LLMWorker:
    """A worker's state and logic; `WorkerActor` is this class as an async Ray actor."""

    def __init__(self, worker_id: str, spec: WorkerSpec, queue: str = "triaged-edf", dispatcher: Any = None) -> None:
        if queue not in QUEUE_POLICIES:
            raise ConfigError(f"unknown queue policy {queue!r}; use one of {sorted(QUEUE_POLICIES)}")
        self.id = worker_id
        self.spec = spec
        self.dispatcher = dispatcher  # actor handle told when a call starts, or None
        self.queue = QUEUE_POLICIES[queue]()
        self.backend: Backend | None = None
        self.cores: SpareCores | None = None  # an embedded backend's idle-core lending, when on
        self.view: WorkerView | None = None
        self.waiting: dict[str, asyncio.Future[bool]] = {}
        # Mirrors the backend's first-free-first-used instances, so we know which prefix each holds.
        self.free_slots: deque[int] = deque(range(spec.slots))
        self.slot_prefix: list[tuple[str, ...]] = [()] * spec.slots
        self.metrics = WorkerMetrics(worker_id)
        # What the last calls asked for and how they ended (not what they said): for the dashboard and
        # fault tests.
        self.recent: deque[dict[str, Any]] = deque(maxlen=16)
        # Running background generations (call id -> task), which a waiting deadline call preempts.
        self.background: dict[str, asyncio.Task[Completion]] = {}
        self.preempted: set[str] = set()

    def __repr__(self) -> str:
        # Ray shows this in the dashboard's Repr column (taken once, when the actor starts) and
        # prefixes the actor's log lines with it; the live queue depth is in sloflow_queue_length.
        model = self.backend.name if self.backend else self.spec.model
        queued = len(self.view.queued) if self.view else 0
        where = f", {self.spec.accelerator}" if self.spec.accelerator else ""
        return f"LLMWorker({self.id}, {self.spec.kind} {model}{where}, slots={self.spec.slots}, queued={queued})"

    async def ready(self) -> tuple[WorkerProfile, str]:
        """Open the backend, measure its profile (unless the spec carries one); return it and the model."""
        if self.view is None:
            self.backend = self.spec.open()
            # The profile is what the worker does on its own cores: the scheduler must not count on
            # cores a sibling may take back.
            self.cores = getattr(self.backend, "spare_cores", None)
            with self.cores.paused() if self.cores is not None else contextlib.nullcontext():
                profile = self.spec.profile or await measure_profile(
                    self.backend,
                    f"{self.id}:{self.backend.name}",
                    slots=self.spec.slots,
                    context_tokens=self.spec.context_tokens,
                    prompt_words=self.spec.probe_words,
                )
            self.view = WorkerView(self.id, profile, model=self.backend.name)
            log.info("worker %s ready: %s", self.id, profile)
        assert self.backend is not None
        return self.view.profile, self.backend.name

    def _pump(self) -> None:
        assert self.view is not None
        while True:
            call = next_call(self.view, self.queue, time.time())
            if call is None or not self.view.has_room(call):
                break
            self.view.start(call.id, time.time())
            self.waiting.pop(call.id).set_result(True)
        if call is not None and call.deadline is not None:
            self._preempt()
        self.metrics.queue_length(len(self.view.queued))

    def _preempt(self) -> None:
        """A deadline call waits without room: stop one running background generation for it.

        One at a time: its slot's release pumps again, which preempts another if still needed.
        """
        for call_id, generation in self.background.items():
            if call_id not in self.preempted and generation.cancel():
                self.preempted.add(call_id)
                return

    async def _admit(self, call: Call, request: GenerateRequest) -> float | None:
        """Queue `call` until it may start; the seconds it waited, or None if it was withdrawn instead."""
        self.recent.append(
            {"call": call.id, "max_tokens": request.max_tokens, "answer_prefix": request.answer_prefix, "ended": None}
        )
        view = self.view
        assert view is not None and self.backend is not None, "call ready() first"
        arrived = time.time()
        go: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting[call.id] = go
        view.enqueue(call)
        self._pump()
        try:
            if not await go:
                return None
        except asyncio.CancelledError:
            self._ended(call, "cancelled")
            self._abandon(call.id)
            raise
        waited = time.time() - arrived
        self.metrics.queue_wait(waited)
        return waited

    def _announce(self, call_id: str) -> None:
        """Tell the dispatcher a call took a slot (keeps its view exact), once the generation is under way.

        Submitting an actor call costs about as much as a short call's first step: scheduled with
        `call_soon` after the generation's own first step, it no longer delays the answer.
        """
        if self.dispatcher is not None:
            asyncio.get_running_loop().call_soon(self.dispatcher.started.remote, self.id, call_id)

    def _abandon(self, call_id: str) -> None:
        """Forget a call cancelled before it took a slot (it may have been picked just now)."""
        assert self.view is not None
        self.waiting.pop(call_id, None)
        if call_id in self.view.queued:
            self.view.withdraw(call_id)
        elif call_id in self.view.running:
            self.view.finish(call_id)
        self._pump()

    def _ended(self, call: Call, how: str, tokens: int | None = None) -> None:
        """Record how a call left the worker: `done` (with its tokens), `cancelled`, `withdrawn` or `preempted`."""
        for entry in reversed(self.recent):  # the latest admission: a preempted call is admitted again
            if entry["call"] == call.id:
                entry.update(ended=how, completion_tokens=tokens)
                return

    def _release(self, call: Call, slot: int, apart: bool = False) -> tuple[str, ...]:
        """Free `slot`; unless the call ran `apart` from its cache, the slot now holds the call's prefix."""
        assert self.view is not None
        self.free_slots.append(slot)
        if not apart:
            # A call stopped part-way is counted as holding its whole prefix: its finished chunks
            # are held, so this only overprices how much, never where.
            self.slot_prefix[slot] = call.prefix_keys
        self.view.held_prefixes = {key for keys in self.slot_prefix for key in keys}
        self.view.finish(call.id)
        self._pump()
        return tuple(self.view.held_prefixes)

    async def run(self, call: Call, request: GenerateRequest) -> Outcome:
        """Queue `call`, run it when the queue policy and a slot allow, return its completion.

        A background call preempted by a deadline call goes back to the queue and starts over.
        """
        while True:
            waited = await self._admit(call, request)
            assert self.view is not None and self.backend is not None
            if waited is None:
                self._ended(call, "withdrawn")
                return Outcome(None, tuple(self.view.held_prefixes))
            slot = self.free_slots.popleft()
            apart = call.deadline is None and not call.warms_cache
            generation = asyncio.ensure_future(self.backend.generate(request, background=apart))
            self._announce(call.id)
            if call.deadline is None:
                self.background[call.id] = generation
            completion: Completion | None = None
            try:
                completion = await generation
            except asyncio.CancelledError:
                # Preempted: our generation was stopped while nobody cancelled this call itself.
                current = asyncio.current_task()
                if call.id not in self.preempted or (current is not None and current.cancelling()):
                    self._ended(call, "cancelled")
                    raise
                self._ended(call, "preempted")
                continue
            finally:
                self.background.pop(call.id, None)
                self.preempted.discard(call.id)
                # Asked to run apart, a background call says whether it did (EmbeddedBackend runs it on
                # a shared instance when its own is busy); a stopped one's placement is unknown.
                held = self._release(call, slot, apart and (completion is None or completion.apart))
            assert completion is not None
            self._ended(call, "done", completion.completion_tokens)
            self.metrics.served(completion, self.cores)
            completion = completion.model_copy(update={"worker": self.id, "queue_s": waited})
            log.debug(
                "call done: %d+%d tokens, first token %.3f s, total %.3f s", completion.prompt_tokens,
                completion.completion_tokens, completion.ttft_s, completion.total_s, extra={**call.log_ids(), "worker": self.id},
            )
            return Outcome(completion, held)

    async def stream(self, call: Call, request: GenerateRequest) -> AsyncIterator[Chunk | Outcome]:
        """Like `run`, but yield the text pieces as they come, then the `Outcome`."""
        waited = await self._admit(call, request)
        assert self.view is not None and self.backend is not None
        if waited is None:
            self._ended(call, "withdrawn")
            yield Outcome(None, tuple(self.view.held_prefixes))
            return
        slot = self.free_slots.popleft()
        completion: Completion | None = None
        self._announce(call.id)
        try:
            # Closed with this stream: the backend stops decoding before the slot is released.
            async with contextlib.aclosing(self.backend.stream(request)) as chunks:
                async for chunk in chunks:
                    if chunk.completion is not None:
                        completion = chunk.completion
                    else:
                        yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            self._ended(call, "cancelled")
            raise
        finally:
            held = self._release(call, slot)
        assert completion is not None, "a backend stream ends with its completion"
        self._ended(call, "done", completion.completion_tokens)
        self.metrics.served(completion, self.cores)
        yield Outcome(completion.model_copy(update={"worker": self.id, "queue_s": waited}), held)

    async def withdraw(self, call_id: str) -> bool:
        """Take back a call that is still queued; False if it already started or is unknown."""
        if self.view is None or call_id not in self.view.queued:
            return False
        self.view.withdraw(call_id)
        self.waiting.pop(call_id).set_result(False)
        self.metrics.queue_length(len(self.view.queued))
        return True

    async def state(self) -> dict[str, Any]:
        """Queued and running call ids and what the last calls asked for, for tests and the dashboard."""
        view = self.view
        return {
            "queued": list(view.queued) if view else [],
            "running": list(view.running) if view else [],
            "recent": list(self.recent),
        }

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.close()


WorkerActor = ray.remote(LLMWorker)
