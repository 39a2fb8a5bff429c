"""OpenAI-compatible `/v1/chat/completions`, plain and streamed as server-sent events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette.sse import EventSourceResponse

from sloflow.api.auth import Caller
from sloflow.errors import Cancelled, DeadlineExceeded, Forbidden, InvalidRequest, NotFound
from sloflow.llm import GenerateRequest, Message
from sloflow.llm.client import CallContext, LLMClient, request_context
from sloflow.scheduler.policies.profile import WorkerProfile

router = APIRouter(prefix="/v1", tags=["chat"])

T = TypeVar("T")
DISCONNECT_POLL_S = 0.25
# A deadline shorter than this is not met by any call here (HTTP, scheduling and a first token
# alone take about 0.1 s on this machine's test model): a 4xx at submission, where a deadline that
# passes during the work is a 504.
MIN_DEADLINE_S = 0.25
# The measured speed is of an idle worker; a request is refused only when even twice that is late.
_FEASIBLE_MARGIN = 2.0
MAX_PROMPT_CHARS = 1_000_000
DEFAULT_MAX_TOKENS = 512


class ResponseFormat(BaseModel):
    """`text`, `json_object` (optionally with `schema`) or `json_schema` (OpenAI's form)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    json_schema: dict[str, Any] | None = None

    def schema_dict(self) -> dict[str, Any] | None:
        if self.type == "json_schema":
            if not self.json_schema or not isinstance(self.json_schema.get("schema"), dict):
                raise InvalidRequest("response_format.json_schema.schema must be a JSON schema object")
            return self.json_schema["schema"]
        if self.type == "json_object":
            return self.schema_ or {"type": "object"}
        return None


class ChatRequest(BaseModel):
    """The subset of OpenAI's chat request that sloflow honours; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)  # unknown fields: OpenAI clients send many; wrong types: refused

    model: str | None = Field(None, min_length=1, max_length=200)
    messages: list[Message] = Field(
        ...,
        min_length=1,
        max_length=1000,
        json_schema_extra={"contains": {"type": "object", "properties": {"content": {"type": "string", "pattern": r"\S"}}}},
        description="at least one message with content",
    )
    max_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: Annotated[str, Field(min_length=1, max_length=200)] | Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=4)
    ] | None = Field(None, description="up to 4 stop sequences of 1-200 characters")
    seed: int | None = None
    stream: bool = False
    response_format: ResponseFormat | None = None
    # sloflow's additions: the scheduler orders calls by deadline; background calls use idle capacity.
    deadline_s: float | None = Field(None, ge=MIN_DEADLINE_S, le=3600, description="seconds from now to finish by")
    priority: Literal["interactive", "background"] = "interactive"

    @model_validator(mode="after")
    def _something_to_answer(self) -> ChatRequest:
        if not any(m.content.strip() for m in self.messages):
            raise ValueError("every message is empty: send at least one message with content")
        if sum(len(m.content) for m in self.messages) > MAX_PROMPT_CHARS:
            raise ValueError(f"the messages hold more than {MAX_PROMPT_CHARS} characters")
        return self

    def to_generate(self) -> GenerateRequest:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerateRequest(
            messages=self.messages,
            max_tokens=self.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop,
            seed=self.seed,
            json_schema=self.response_format.schema_dict() if self.response_format else None,
        )


def _context(request: Request, body: ChatRequest, tenant: str) -> tuple[str, CallContext]:
    models: list[str] = request.app.state.models
    name = body.model or models[0]
    if name not in models:
        raise NotFound(f"model {name!r} is not served here; use one of {sorted(models)}", details={"models": sorted(models)})
    context_tokens: int | None = getattr(request.app.state, "context_tokens", None)
    if context_tokens is not None and body.max_tokens is not None and body.max_tokens >= context_tokens:
        raise InvalidRequest(
            f"max_tokens {body.max_tokens} does not fit the model's context of {context_tokens} tokens (prompt included); ask for fewer",
            details={"context_tokens": context_tokens},
        )
    meter = getattr(request.app.state, "meter", None)
    if meter is not None and body.priority == "interactive" and meter.quotas(tenant).max_priority == "background":
        raise Forbidden(f"tenant {tenant!r} may make background calls only; send \"priority\": \"background\"")
    ctx = request_context(deadline_s=body.deadline_s, priority=body.priority, model=body.model, tenant=tenant)
    if ctx.deadline is not None:
        _check_feasible(request, body, ctx.deadline - time.time())
    return name, ctx


def _check_feasible(request: Request, body: ChatRequest, seconds: float) -> None:
    """Refuse at submission a deadline that even the fastest worker, idle, could not meet for this request.

    The estimate: prompt tokens at ~4 characters each plus the chat template's, the whole
    `max_tokens` decoded, at the measured idle speed with a margin. What fails it is the client's
    to fix; a deadline that passes later, in a queue or on a busier worker, is a 504.
    """
    profiles: list[WorkerProfile] = getattr(request.app.state, "profiles", None) or []
    if not profiles:
        return
    prompt = sum(len(m.content) // 4 + 8 for m in body.messages) + 8
    output = body.max_tokens or DEFAULT_MAX_TOKENS
    needed = _FEASIBLE_MARGIN * min(p.solo_s(prompt, output) for p in profiles)
    if seconds < needed:
        raise InvalidRequest(
            f"deadline_s {seconds:.3g} cannot be met: about {prompt} prompt tokens and max_tokens {output} take at least "
            f"{needed:.2f} s on the fastest worker here; allow more time or ask for fewer tokens",
            details={"needed_s": round(needed, 3)},
        )


def _past_deadline() -> DeadlineExceeded:
    return DeadlineExceeded("the completion was not ready by its deadline and was cancelled; allow more deadline_s or fewer max_tokens")


async def _unless_disconnected(request: Request, work: Awaitable[T], ctx: CallContext) -> T:
    """Await `work`, cancelling it if the client hangs up first or its deadline passes, so its worker stops generating.

    Servers cancel a streamed response when the client goes away, not a plain one: watch for it.
    """
    job = asyncio.ensure_future(work)
    try:
        while not job.done():
            left = ctx.remaining_s()
            if left is not None and left <= 0:
                job.cancel()
                raise _past_deadline()
            await asyncio.wait({job}, timeout=DISCONNECT_POLL_S if left is None else min(DISCONNECT_POLL_S, left))
            if not job.done() and await request.is_disconnected():
                job.cancel()
                raise Cancelled("the client disconnected before its completion was ready")
        return job.result()
    finally:
        job.cancel()  # no-op once done; stops the call if this handler itself is cancelled


_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices", "usage"],
    "properties": {
        "id": {"type": "string"}, "object": {"const": "chat.completion"}, "created": {"type": "integer"}, "model": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "object"}}, "usage": {"type": "object"},
    },
}
_CHUNK_EVENT = {  # one server-sent event: a JSON chunk, an in-band error, or the final "[DONE]"
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}},
}


@router.post(
    "/chat/completions",
    response_model=None,
    operation_id="chat_completions",
    responses={
        200: {
            "description": "the completion; with stream: true, server-sent chunks ending in data: [DONE]",
            "content": {"application/json": {"schema": _COMPLETION}, "text/event-stream": {"schema": _CHUNK_EVENT}},
        }
    },
)
async def chat_completions(body: ChatRequest, request: Request, caller: Caller) -> dict[str, Any] | EventSourceResponse:
    """Generate a chat completion; with `stream: true`, as SSE chunks ending in `data: [DONE]`."""
    name, ctx = _context(request, body, caller.tenant)
    llm: LLMClient = request.app.state.llm
    gen = body.to_generate()
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if not body.stream:
        out = await _unless_disconnected(request, llm.generate(gen, ctx), ctx)
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": out.text}, "finish_reason": out.finish_reason}
            ],
            "usage": {
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "total_tokens": out.prompt_tokens + out.completion_tokens,
            },
        }

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        doc = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return json.dumps(doc)

    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"data": chunk({"role": "assistant"})}
        pieces = aiter(llm.stream(gen, ctx))
        try:
            while True:
                left = ctx.remaining_s()
                try:
                    piece = await (anext(pieces) if left is None else asyncio.wait_for(anext(pieces), max(left, 0.0)))
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise _past_deadline() from None
                if piece.completion is not None:
                    out = piece.completion
                    usage = {
                        "prompt_tokens": out.prompt_tokens,
                        "completion_tokens": out.completion_tokens,
                        "total_tokens": out.prompt_tokens + out.completion_tokens,
                    }
                    yield {"data": chunk({}, out.finish_reason, usage=usage)}
                elif piece.text:
                    yield {"data": chunk({"content": piece.text})}
        except Exception as exc:  # headers are sent: report the error in-band, as OpenAI does
            message = getattr(exc, "message", None) or "generation failed; the server log has the details"
            yield {"data": json.dumps({"error": {"code": getattr(exc, "code", "internal_error"), "message": message}})}
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=15)
