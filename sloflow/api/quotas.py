"""Per-tenant quotas: requests and LLM tokens per minute, concurrent runs, and a priority cap.

`Meter` keeps one-minute sliding windows in this process (one API replica; several replicas would
share them through Redis or the database). `MeteredClient` wraps the LLM client that the chat route
and every run use: it refuses a call while its tenant is over its tokens, counts what each call
used, and lowers the priority of a tenant whose plan allows only background calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from sloflow.errors import InvalidRequest, QuotaExceeded
from sloflow.llm.client import CallContext, LLMClient, SpeedSource
from sloflow.llm.types import Chunk, Completion, GenerateRequest, Speed
from sloflow.tenancy import KeyStore, Quotas

WINDOW_S = 60.0


class _Window:
    """(time, amount) entries of the last minute."""

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def trim(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - WINDOW_S:
            self.total -= self.entries.popleft()[1]

    def add(self, now: float, amount: int) -> None:
        self.entries.append((now, amount))
        self.total += amount

    def free_after(self, now: float, need_below: int) -> float:
        """Seconds until the total drops below `need_below` as old entries leave the window."""
        total = self.total
        for ts, amount in self.entries:
            total -= amount
            if total < need_below:
                return max(ts + WINDOW_S - now, 0.0)
        return WINDOW_S


class Meter:
    """Counts each tenant's requests and tokens over the last minute against its quotas."""

    def __init__(self, keys: KeyStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = keys
        self._clock = clock
        self._requests: dict[str, _Window] = {}
        self._tokens: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def quotas(self, tenant: str) -> Quotas:
        return self.keys.quotas(tenant)

    def admit_request(self, tenant: str) -> None:
        """Count one request, or raise `QuotaExceeded` if the tenant is at its rate."""
        limit = self.quotas(tenant).requests_per_min
        with self._lock:
            now = self._clock()
            window = self._requests.setdefault(tenant, _Window())
            window.trim(now)
            if window.total >= limit:
                wait = window.free_after(now, limit)
                raise QuotaExceeded(
                    f"tenant {tenant!r} is over its {limit} requests per minute; retry after {wait:.1f} s",
                    retry_after_s=wait,
                    details={"quota": "requests_per_min", "limit": limit},
                )
            window.add(now, 1)

    def check_tokens(self, tenant: str, reserve: int = 0) -> None:
        """Raise `QuotaExceeded` unless the tenant's tokens of this minute leave room for `reserve` more.

        A call reserves its `max_tokens`, as hosted APIs count them, so a tenant cannot start long
        generations that its quota would only catch after they finished.
        """
        limit = self.quotas(tenant).tokens_per_min
        if reserve > limit:
            raise InvalidRequest(
                f"max_tokens {reserve} is more than tenant {tenant!r} may use in a minute ({limit} tokens); ask for fewer",
                details={"quota": "tokens_per_min", "limit": limit},
            )
        with self._lock:
            now = self._clock()
            window = self._tokens.setdefault(tenant, _Window())
            window.trim(now)
            if window.total + reserve > limit or window.total >= limit:
                wait = window.free_after(now, limit - reserve + 1)
                raise QuotaExceeded(
                    f"tenant {tenant!r} has used its {limit} LLM tokens per minute; retry after {wait:.1f} s",
                    retry_after_s=wait,
                    details={"quota": "tokens_per_min", "limit": limit},
                )

    def add_tokens(self, tenant: str, tokens: int) -> None:
        with self._lock:
            self._tokens.setdefault(tenant, _Window()).add(self._clock(), tokens)

    def usage(self, tenant: str) -> dict[str, int]:
        """Requests and tokens of the last minute."""
        with self._lock:
            now = self._clock()
            out = {}
            for name, windows in (("requests_last_min", self._requests), ("tokens_last_min", self._tokens)):
                window = windows.get(tenant)
                if window is not None:
                    window.trim(now)
                out[name] = window.total if window is not None else 0
            return out


class MeteredClient:
    """An `LLMClient` that holds each call to its tenant's token quota and priority cap."""

    def __init__(self, inner: LLMClient, meter: Meter) -> None:
        self.inner = inner
        self.meter = meter

    def _admit(self, request: GenerateRequest, ctx: CallContext) -> CallContext:
        if ctx.tenant is None:  # work of the process itself (profiling, warm-up), not a tenant's
            return ctx
        self.meter.check_tokens(ctx.tenant, request.max_tokens)
        if ctx.deadline is not None and self.meter.quotas(ctx.tenant).max_priority == "background":
            return dataclasses.replace(ctx, deadline=None, budget_s=None)  # idle capacity only
        return ctx

    async def speed(self, model: str | None = None) -> Speed | None:
        return await self.inner.speed(model) if isinstance(self.inner, SpeedSource) else None

    def _count(self, ctx: CallContext, out: Completion) -> None:
        if ctx.tenant is not None:
            self.meter.add_tokens(ctx.tenant, out.prompt_tokens + out.completion_tokens)

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        ctx = self._admit(request, ctx)
        out = await self.inner.generate(request, ctx)
        self._count(ctx, out)
        return out

    async def stream(self, request: GenerateRequest, ctx: CallContext) -> AsyncIterator[Chunk]:
        ctx = self._admit(request, ctx)
        async with contextlib.aclosing(self.inner.stream(request, ctx)) as chunks:
            async for chunk in chunks:
                if chunk.completion is not None:
                    self._count(ctx, chunk.completion)
                yield chunk
