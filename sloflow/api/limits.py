"""What one request body may be, checked before any route reads it: size, UTF-8, JSON nesting depth.

An ASGI middleware, so an oversized body is refused while it arrives (413) rather than after it is
all in memory, and a deeply nested one never reaches the recursive JSON parser. Each refusal is the
usual `{code, message, details}` body saying which limit and by how much.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings do not count)."""
    brackets = _STRING.sub(b'""', body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


class BodyLimits:
    """Refuses bodies over `max_bytes` (413), JSON bodies that are not UTF-8 (400) or nest deeper than `max_depth` (400)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, 413, "payload_too_large", self._too_large(int(declared)), {"max_bytes": self.max_bytes})
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, 413, "payload_too_large", self._too_large(size, at_least=True), {"max_bytes": self.max_bytes})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and "json" in headers.get("content-type", "application/json"):
            problem = self._json_problem(body)
            if problem is not None:
                await _refuse(send, 400, "invalid_request", *problem)
                return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self, size: int, at_least: bool = False) -> str:
        return f"the request body is {'over ' if at_least else ''}{size} bytes; the limit is {self.max_bytes} (send less, e.g. documents in batches)"

    def _json_problem(self, body: bytes) -> tuple[str, dict[str, Any]] | None:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"the request body is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8", {"byte": exc.start}
        depth = json_depth(body)
        if depth > self.max_depth:
            return f"the JSON body nests {depth} levels deep; the limit is {self.max_depth}", {"depth": depth, "max_depth": self.max_depth}
        return None


def _replay(body: bytes, upstream: Receive) -> Receive:
    """The body as one message, then the connection's own messages (a disconnect, for SSE and chat)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive


async def _refuse(send: Send, status: int, code: str, message: str, details: dict[str, Any]) -> None:
    payload = json.dumps({"code": code, "message": message, "details": details}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
