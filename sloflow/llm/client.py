"""What a workflow stage holds to call an LLM: a client that attaches the call's deadline.

The runtime builds a `CallContext` for every LLM call (run, stage, budget, absolute deadline);
an `LLMClient` carries it to whatever places the call. `DirectClient` calls one backend in
process; the scheduler provides a client that dispatches to Ray workers by urgency.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from sloflow.errors import DeadlineExceeded
from sloflow.llm.backend import Backend
from sloflow.llm.types import Chunk, Completion, GenerateRequest, Speed

Priority = Literal["interactive", "background"]


@dataclass(frozen=True)
class CallContext:
    """Who makes an LLM call and by when it must finish (absolute `time.time()` seconds)."""

    run_id: str = ""
    workflow: str = ""
    stage: str = ""
    deadline: float | None = None  # None: background work, served on idle capacity
    budget_s: float | None = None  # this call's share of the remaining time, per the runtime
    tenant: str | None = None
    prefix_key: str | None = None  # identifies a shared prompt prefix (prefix-aware dispatch)
    model: str | None = None  # a specific model, or None for any worker
    # Background work that prefills a prompt for a deadline call to come (speculative prefill): it
    # must land in the cache that call will use, not apart like other background work.
    warms_cache: bool = False

    @property
    def priority(self) -> Priority:
        return "background" if self.deadline is None else "interactive"

    def remaining_s(self, now: float | None = None) -> float | None:
        """Seconds left before the deadline (negative when late), or None without one."""
        return None if self.deadline is None else self.deadline - (time.time() if now is None else now)


def request_context(
    *,
    deadline_s: float | None = None,
    priority: Priority = "interactive",
    workflow: str = "chat",
    tenant: str | None = None,
    model: str | None = None,
    default_deadline_s: float = 60.0,
) -> CallContext:
    """The context of a single call made outside a workflow (e.g. the chat endpoint).

    `deadline_s` is seconds from now; an interactive call without one gets `default_deadline_s`
    so that it still orders among deadline calls; a background call has no deadline at all.
    """
    run_id = uuid.uuid4().hex
    if priority == "background":
        return CallContext(run_id=run_id, workflow=workflow, tenant=tenant, model=model)
    seconds = default_deadline_s if deadline_s is None else deadline_s
    return CallContext(run_id=run_id, workflow=workflow, deadline=time.time() + seconds, tenant=tenant, model=model)


class LLMClient(Protocol):
    """Places LLM calls that carry a `CallContext`."""

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        """Generate the whole completion."""
        ...

    def stream(self, request: GenerateRequest, ctx: CallContext) -> AsyncIterator[Chunk]:
        """Yield pieces as generated; the last carries the `Completion`."""
        ...


@runtime_checkable
class SpeedSource(Protocol):
    """A client that knows how fast its calls go, from measurements of what serves them.

    Workflows size their work to the time left with it (how many SQL candidates fit, say); a
    client without it leaves them with their declared `Speed`.
    """

    async def speed(self, model: str | None = None) -> Speed | None:
        """The measured speed of the workers that would serve a call for `model` (any: None); None if unknown."""
        ...


def ensure_time_left(ctx: CallContext) -> None:
    """Refuse a call whose deadline has already passed: its answer could only arrive late."""
    left = ctx.remaining_s()
    if left is not None and left <= 0:
        raise DeadlineExceeded(f"{ctx.workflow}/{ctx.stage}: deadline passed {-left:.2f}s before the call")


class DirectClient:
    """Calls one backend in process; refuses calls whose deadline has already passed.

    `measured`: the backend's speed if it was profiled (a `SpeedSource` then says so).
    """

    def __init__(self, backend: Backend, measured: Speed | None = None) -> None:
        self.backend = backend
        self.measured = measured

    async def speed(self, model: str | None = None) -> Speed | None:
        return self.measured

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        ensure_time_left(ctx)
        return await self.backend.generate(request)

    async def stream(self, request: GenerateRequest, ctx: CallContext) -> AsyncIterator[Chunk]:
        ensure_time_left(ctx)
        async with contextlib.aclosing(self.backend.stream(request)) as chunks:  # closed with this stream, not at GC
            async for chunk in chunks:
                yield chunk
