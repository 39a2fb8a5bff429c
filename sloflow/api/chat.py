"""OpenAI-compatible `/v1/chat/completions`, plain and streamed as server-sent events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from sloflow.errors import Cancelled, InvalidRequest, NotFound
from sloflow.llm import GenerateRequest, Message
from sloflow.llm.client import CallContext, LLMClient, request_context

router = APIRouter(prefix="/v1", tags=["chat"])

T = TypeVar("T")
DISCONNECT_POLL_S = 0.25


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

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[Message] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    response_format: ResponseFormat | None = None
    # sloflow's additions: the scheduler orders calls by deadline; background calls use idle capacity.
    deadline_s: float | None = Field(None, gt=0, le=3600, description="seconds from now to finish by")
    priority: Literal["interactive", "background"] = "interactive"

    def to_generate(self) -> GenerateRequest:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerateRequest(
            messages=self.messages,
            max_tokens=self.max_tokens or 512,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop,
            seed=self.seed,
            json_schema=self.response_format.schema_dict() if self.response_format else None,
        )


def _context(request: Request, body: ChatRequest) -> tuple[str, CallContext]:
    models: list[str] = request.app.state.models
    name = body.model or models[0]
    if name not in models:
        raise NotFound(f"model {name!r} is not served here; use one of {sorted(models)}", details={"models": sorted(models)})
    ctx = request_context(deadline_s=body.deadline_s, priority=body.priority, model=body.model)
    return name, ctx


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client hangs up first, so its worker stops generating.

    Servers cancel a streamed response when the client goes away, not a plain one: watch for it.
    """
    job = asyncio.ensure_future(work)
    try:
        while not job.done():
            await asyncio.wait({job}, timeout=DISCONNECT_POLL_S)
            if not job.done() and await request.is_disconnected():
                job.cancel()
                raise Cancelled("the client disconnected before its completion was ready")
        return job.result()
    finally:
        job.cancel()  # no-op once done; stops the call if this handler itself is cancelled


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, request: Request) -> dict[str, Any] | EventSourceResponse:
    """Generate a chat completion; with `stream: true`, as SSE chunks ending in `data: [DONE]`."""
    name, ctx = _context(request, body)
    llm: LLMClient = request.app.state.llm
    gen = body.to_generate()
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if not body.stream:
        out = await _unless_disconnected(request, llm.generate(gen, ctx))
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
        try:
            async for piece in llm.stream(gen, ctx):
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
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=15)
