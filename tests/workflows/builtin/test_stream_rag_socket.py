"""One WebSocket per streaming run: revisions up, the run's events down (a real loopback server, a scripted LLM)."""

from __future__ import annotations

import json

from fastapi import FastAPI
from websockets.asyncio.client import connect

from sloflow.api import runs, turns
from sloflow.api.auth import OpenAccess
from sloflow.api.errors import install_error_handlers
from sloflow.workflows import Runtime
from tests.conftest import serving
from tests.workflows.builtin.test_stream_rag import Index, index, typed  # noqa: F401  (the scripted index fixture)


async def test_a_websocket_carries_revisions_up_and_tokens_down_after_the_final_input(memory_runtime: Runtime, index: Index, llm) -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(runs.router)
    app.include_router(turns.router)
    app.state.runtime = memory_runtime
    app.state.auth = OpenAccess()
    async with serving(app) as port:
        record = await memory_runtime.start("stream_rag", {"index": "docs"})
        received: list[dict] = []
        async with connect(f"ws://127.0.0.1:{port}/v1/runs/{record.id}/ws") as ws:
            texts = typed("Is Paris bigger than the city of Lyon today?")
            for i, text in enumerate(texts[:-1]):
                await ws.send(json.dumps({"revision": i, "text": text}))
            await ws.send(json.dumps({"revision": 0, "text": "Is"}))  # out of order: answered, the socket stays open
            await ws.send("not json")
            await ws.send(json.dumps({"revision": len(texts), "text": texts[-1], "is_final": True}))
            async for message in ws:
                received.append(json.loads(message))
        kinds = [m["kind"] for m in received]
        errors = [m["data"] for m in received if m["kind"] == "error"]
        assert [e["code"] for e in errors] == ["conflict", "invalid_request"] and "out of order" in errors[0]["message"]
        assert kinds[-1] == "run_finished" and received[-1]["data"]["status"] == "succeeded"
        final = next(i for i, m in enumerate(received) if m["kind"] == "progress" and m["data"].get("message") == "input final")
        assert min(i for i, k in enumerate(kinds) if k == "token") > final
