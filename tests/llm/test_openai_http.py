"""The OpenAI-compatible backend against a real server: llama-cpp-python's own, on loopback."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from sloflow.errors import BackendError, InvalidRequest, SloflowError
from sloflow.llm import GenerateRequest, Message
from sloflow.llm.openai_http import OpenAIBackend
from tests.conftest import free_port
from tests.serving import serving

ASK = [Message(role="user", content="Name a fruit.")]


@pytest.fixture(scope="module")
def server_url(test_model_path: Path) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(test_model_path), "--model_alias", "small",
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", "2", "--n_ctx", "2048"]
    with serving(cmd, f"http://127.0.0.1:{port}/v1/models"):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture
async def remote(server_url: str) -> AsyncIterator[OpenAIBackend]:
    backend = OpenAIBackend(server_url, "small", timeout_s=60)
    yield backend
    await backend.close()


async def test_generate_chat_and_prompt(remote: OpenAIBackend) -> None:
    out = await remote.generate(GenerateRequest(messages=ASK, max_tokens=16, temperature=0))
    assert out.text.strip() and out.prompt_tokens > 0 and out.completion_tokens > 0
    out = await remote.generate(GenerateRequest(prompt="1, 2, 3,", max_tokens=4, temperature=0))
    assert out.completion_tokens == 4 and out.finish_reason == "length"


async def test_stream_pieces_add_up_to_the_completion(remote: OpenAIBackend) -> None:
    req = GenerateRequest(messages=ASK, max_tokens=16, temperature=0)
    pieces = [c async for c in remote.stream(req)]
    final = pieces[-1].completion
    assert final is not None and all(c.completion is None for c in pieces[:-1])
    assert "".join(c.text for c in pieces[:-1]) == final.text
    assert 0 < final.completion_tokens <= 16 and final.ttft_s <= final.total_s


async def test_json_schema_falls_back_to_the_servers_form(remote: OpenAIBackend) -> None:
    schema = {"type": "object", "properties": {"fruit": {"type": "string"}}, "required": ["fruit"]}
    out = await remote.generate(GenerateRequest(messages=ASK, max_tokens=32, temperature=0, json_schema=schema))
    assert out.text.lstrip().startswith("{")
    if out.finish_reason == "stop":  # a finished answer is the schema's JSON; a cut one says "length"
        assert isinstance(json.loads(out.text)["fruit"], str)
    else:
        assert out.finish_reason == "length" and out.completion_tokens == 32


async def test_unreachable_endpoint_is_a_clear_error() -> None:
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", "x", retries=2, backoff_s=0.01)
    with pytest.raises(BackendError, match="failed after 3 attempts"):
        await backend.generate(GenerateRequest(messages=ASK, max_tokens=4))
    await backend.close()


class _Garbage(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"<html>surprise</html>")

    def log_message(self, *args: object) -> None:
        pass


async def test_garbage_answer_is_a_clear_error() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend = OpenAIBackend(f"http://127.0.0.1:{server.server_port}/v1", "x", retries=0)
    try:
        with pytest.raises(BackendError, match="not a completion"):
            await backend.generate(GenerateRequest(messages=ASK, max_tokens=4))
    finally:
        await backend.close()
        server.shutdown()


class _Refuse(BaseHTTPRequestHandler):
    """Answers every POST with the status its path names, e.g. /400/v1/chat/completions; counts them."""

    posts: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.posts.append(self.path)
        self.send_response(int(self.path.split("/")[1]))
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": {"message": "no"}}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("status", "error"), [(400, InvalidRequest), (413, InvalidRequest), (422, InvalidRequest),
                                               (401, BackendError), (403, BackendError), (404, BackendError)])
async def test_a_refusal_blames_the_request_only_when_every_server_would_refuse_it(status: int, error: type) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend = OpenAIBackend(f"http://127.0.0.1:{server.server_port}/{status}/v1", "x", retries=2, backoff_s=0.01)
    _Refuse.posts.clear()
    try:
        with pytest.raises(SloflowError) as err:
            await backend.generate(GenerateRequest(messages=ASK, max_tokens=4))
        assert type(err.value) is error and f"refused the request ({status})" in err.value.message
        assert err.value.details["status"] == status and len(_Refuse.posts) == 1  # a refusal is not retried
    finally:
        await backend.close()
        server.shutdown()
