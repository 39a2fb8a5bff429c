"""`SchedulerClient`: the `LLMClient` that sends a stage's calls through the dispatcher actor.

It turns a request and its `CallContext` into a `Call`: the call's own deadline is its budget
from now (at most the request's deadline), token counts are estimated from the text (four
characters a token) since the dispatcher must decide before any worker has tokenized it.
Cancelling the caller (a client that hangs up, a cancelled run) cancels the call in the
dispatcher with `ray.cancel`, which passes it on to the worker holding the call.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray.exceptions import RayTaskError

from sloflow.errors import BackendError, SloflowError
from sloflow.llm.client import CallContext, ensure_time_left
from sloflow.llm.types import Chunk, Completion, GenerateRequest, approx_tokens
from sloflow.scheduler.call import Call


def to_call(request: GenerateRequest, ctx: CallContext, now: float | None = None) -> Call:
    """The `Call` the scheduler places for `request` made under `ctx`."""
    now = time.time() if now is None else now
    if request.messages is not None:
        texts = [m.content for m in request.messages]
        prefix = sum(approx_tokens(t) for t in texts[:-1])  # everything before the last message is shared
    else:
        texts = [request.prompt or ""]
        prefix = 0
    deadline = ctx.deadline
    if deadline is not None and ctx.budget_s is not None:
        deadline = min(deadline, now + ctx.budget_s)
    return Call(
        id=uuid.uuid4().hex,
        prompt_tokens=sum(approx_tokens(t) for t in texts),
        output_tokens=request.max_tokens,
        release=now,
        deadline=deadline,
        request_deadline=ctx.deadline,
        run_id=ctx.run_id,
        workflow=ctx.workflow,
        stage=ctx.stage,
        tenant=ctx.tenant,
        prefix_key=ctx.prefix_key,
        prefix_tokens=prefix if ctx.prefix_key else 0,
        model=ctx.model,
    )


def _unwrap(exc: RayTaskError) -> SloflowError:
    # Our own errors come back as themselves, so the API's one handler maps them to responses.
    if isinstance(exc.cause, SloflowError):
        return exc.cause
    return BackendError(f"the dispatcher failed: {exc.cause}")


class SchedulerClient:
    """Places LLM calls through the dispatcher actor (see `dispatcher.start_dispatcher`)."""

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher

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
