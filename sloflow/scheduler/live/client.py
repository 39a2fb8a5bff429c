"""`SchedulerClient`: the `LLMClient` that sends a stage's calls through the dispatcher actor.

It turns a request and its `CallContext` into a `Call` (`to_call`) and awaits the dispatcher.
Cancelling the caller (a client that hangs up, a cancelled run) cancels the call in the
dispatcher with `ray.cancel`, which passes it on to the worker holding the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray.exceptions import RayTaskError

from sloflow.errors import BackendError, SloflowError
from sloflow.llm.client import CallContext, ensure_time_left
from sloflow.llm.types import Chunk, Completion, GenerateRequest, Speed
from sloflow.scheduler.policies.call import to_call
from sloflow.scheduler.policies.profile import typical_speed

SPEED_TTL_S = 30.0  # workers come and go rarely: ask the dispatcher for their profiles at most this often


def _unwrap(exc: RayTaskError) -> SloflowError:
    # Our own errors come back as themselves, so the API's one handler maps them to responses.
    if isinstance(exc.cause, SloflowError):
        return exc.cause
    return BackendError(f"the dispatcher failed: {exc.cause}")


class SchedulerClient:
    """Places LLM calls through the dispatcher actor (see `dispatcher.start_dispatcher`)."""

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher
        self._speeds: dict[str | None, tuple[float, Speed | None]] = {}

    async def speed(self, model: str | None = None) -> Speed | None:
        """The median speed of the workers serving `model` (all workers: None), from the profiles
        they measured at start."""
        known = self._speeds.get(model)
        if known is None or time.monotonic() - known[0] > SPEED_TTL_S:
            workers = await self.dispatcher.workers.remote()
            serving = [w["profile"] for w in workers if not w["draining"] and (model is None or w["model"] in (None, model))]
            known = self._speeds[model] = (time.monotonic(), typical_speed(serving))
        return known[1]

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        ensure_time_left(ctx)
        ref = self.dispatcher.generate.remote(to_call(request, ctx), request)
        try:
            return await ref
        except asyncio.CancelledError:
            ray.cancel(ref)  # awaiting a ref does not cancel its task: say so, or the worker keeps going
            raise
        except RayTaskError as exc:
            raise _unwrap(exc) from None

    async def stream(self, request: GenerateRequest, ctx: CallContext) -> AsyncIterator[Chunk]:
        """Text pieces as the worker generates them; the last chunk carries the completion."""
        ensure_time_left(ctx)
        pieces = self.dispatcher.stream.options(num_returns="streaming").remote(to_call(request, ctx), request)
        try:
            async for ref in pieces:
                yield await ref
        except (asyncio.CancelledError, GeneratorExit):
            ray.cancel(pieces)  # cancelled, or the consumer stopped reading: stop the call too
            raise
        except RayTaskError as exc:
            raise _unwrap(exc) from None
