"""Backend for any OpenAI-compatible HTTP server: vLLM, SGLang, llama-server, Ollama, hosted APIs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from sloflow.errors import BackendError, InvalidRequest
from sloflow.llm.types import Chunk, Completion, GenerateRequest, approx_tokens

log = logging.getLogger(__name__)

_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
# Statuses that blame the request itself (malformed, too large, invalid field); 401/403/404 blame
# this endpoint's key, model name or path, which another worker may have right.
_REQUEST_ERRORS = (400, 413, 422)


def _approx_prompt_tokens(request: GenerateRequest) -> int:
    """The dispatcher's estimate of the prompt size, for servers that report no usage."""
    texts = [m.content for m in request.messages] if request.messages is not None else [request.prompt or ""]
    return sum(approx_tokens(t) for t in [*texts, request.answer_prefix] if t)


class OpenAIBackend:
    """Talks to `{base_url}/chat/completions` or `/completions`; retries connection errors and 5xx."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.25,
    ) -> None:
        self.name = model
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        # OpenAI and vLLM take `json_schema`; llama-cpp's server only `json_object` with a schema.
        # Start with the standard form and fall back once if the server refuses it.
        self._json_mode = "json_schema"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def _body(self, req: GenerateRequest, stream: bool) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.name,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "stream": stream,
        }
        if req.stop:
            body["stop"] = req.stop
        if req.seed is not None:
            body["seed"] = req.seed
        if req.json_schema is not None:
            body["response_format"] = (
                {"type": "json_schema", "json_schema": {"name": "output", "schema": req.json_schema}}
                if self._json_mode == "json_schema"
                else {"type": "json_object", "schema": req.json_schema}
            )
        if stream:
            body["stream_options"] = {"include_usage": True}
        if req.messages is not None:
            if req.answer_prefix:
                # Continuing an assistant message is no part of the OpenAI API (vLLM and llama.cpp's
                # server each have their own form); a new answer would contradict the text sent.
                raise BackendError(
                    f"{self.base_url} cannot continue a chat answer that another worker began; "
                    "only raw-prompt calls can resume on an OpenAI-compatible endpoint"
                )
            body["messages"] = [m.model_dump() for m in req.messages]
            return "/chat/completions", body
        body["prompt"] = (req.prompt or "") + req.answer_prefix
        return "/completions", body

    async def _send(self, req: GenerateRequest, stream: bool) -> tuple[str, httpx.Response]:
        """POST with retries on connection errors and 5xx; the caller closes a streamed response."""
        last: Exception | None = None
        attempt = 0
        while attempt <= self.retries:
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            attempt += 1
            path, body = self._body(req, stream)
            try:
                resp = await self._client.send(self._client.build_request("POST", path, json=body), stream=stream)
            except _RETRYABLE as exc:
                last = exc
                log.warning("%s%s unreachable (attempt %d): %s", self.base_url, path, attempt, exc)
                continue
            except httpx.TimeoutException as exc:
                raise BackendError(f"{self.base_url}{path} timed out: {exc}") from None
            if resp.status_code < 400:
                return path, resp
            await resp.aread()
            await resp.aclose()
            # Some servers (llama-cpp's answers 500) reject OpenAI's json_schema form: fall back once.
            if req.json_schema is not None and self._json_mode == "json_schema" and "response_format" in resp.text:
                self._json_mode = "json_object"
                attempt -= 1
                continue
            if resp.status_code >= 500:
                last = BackendError(f"{self.base_url}{path} answered {resp.status_code}: {resp.text[:300]}")
                continue
            refusal = f"{self.base_url}{path} refused the request ({resp.status_code}): {resp.text[:300]}"
            if resp.status_code in _REQUEST_ERRORS:  # every server would refuse it: no worker to fail over to
                raise InvalidRequest(refusal, details={"status": resp.status_code})
            raise BackendError(refusal, details={"status": resp.status_code})
        raise BackendError(
            f"OpenAI-compatible endpoint {self.base_url} failed after {attempt} attempts: {last}",
            details={"base_url": self.base_url},
        )

    async def generate(self, request: GenerateRequest, *, background: bool = False) -> Completion:
        # Streamed underneath: only a stream shows when the first token came, and the measured
        # worker profile needs that to tell prefill time from decode time.
        async for chunk in self.stream(request):
            if chunk.completion is not None:
                return chunk.completion
        raise AssertionError("stream always ends with the completion")

    def _whole(self, path: str, resp: httpx.Response, request: GenerateRequest, total: float) -> Completion:
        """The completion from a server that answered with one JSON document instead of a stream."""
        try:
            doc = resp.json()
            choice = doc["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            usage = doc.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"{self.base_url}{path} answered something that is not a completion: {exc!r}") from None
        return Completion(
            text=text or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)) or _approx_prompt_tokens(request),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            ttft_s=total,  # not observable without a stream
            total_s=total,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            model=doc.get("model", self.name),
        )

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        start = time.perf_counter()
        ttft: float | None = None
        path, resp = await self._send(request, stream=True)
        parts: list[str] = []
        usage: dict[str, Any] = {}
        finish = "stop"
        try:
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                await resp.aread()
                whole = self._whole(path, resp, request, time.perf_counter() - start)
                if whole.text:
                    yield Chunk(text=whole.text)
                yield Chunk(completion=whole)
                return
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    doc = json.loads(data)
                except ValueError:
                    raise BackendError(f"{self.base_url}{path} streamed a line that is not JSON: {data[:200]}") from None
                usage = doc.get("usage") or usage
                for choice in doc.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                    if choice.get("finish_reason") == "length":
                        finish = "length"
                    if piece:
                        ttft = ttft if ttft is not None else time.perf_counter() - start
                        parts.append(piece)
                        yield Chunk(text=piece)
        except httpx.HTTPError as exc:  # an answer that stalls past the timeout or is cut off
            raise BackendError(f"{self.base_url}{path} broke off its answer: {exc!r}") from None
        finally:
            await resp.aclose()
        total = time.perf_counter() - start
        yield Chunk(
            completion=Completion(
                text="".join(parts),
                # Servers that ignore stream_options.include_usage (llama-cpp-python's) send no usage:
                # a streamed piece is a token, and the prompt is estimated like the dispatcher does.
                prompt_tokens=int(usage.get("prompt_tokens", 0)) or _approx_prompt_tokens(request),
                completion_tokens=int(usage.get("completion_tokens", len(parts))),
                ttft_s=ttft if ttft is not None else total,
                total_s=total,
                finish_reason=finish,  # type: ignore[arg-type]
                model=self.name,
            )
        )

    async def close(self) -> None:
        await self._client.aclose()
