"""Hostile bodies, each refused with its 4xx and a message, and nothing written: the run store,
the indexes, the databases and the database files are the same afterwards."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from sloflow.api.app import create_app
from sloflow.llm.client import DirectClient
from sloflow.llm.embedded import EmbeddedBackend
from tests.api.conftest import Deployment

pytestmark = pytest.mark.fuzz

JSON = {"Content-Type": "application/json"}


def _deep(n: int) -> bytes:
    return b'{"input": ' + b"[" * n + b"]" * n + b"}"


def hostile(d: Deployment) -> list[tuple[str, str, object, int, dict[str, str]]]:
    """(method, path, body (bytes are sent raw), expected status, extra headers)."""
    outside = "sqlite:////etc/passwd.db"
    return [
        ("POST", "/v1/workflows/ask/runs", b"{" + b'"input": {"question": "' + b"x" * (2 << 20) + b'"}}', 413, {}),
        ("POST", "/v1/indexes/notes/documents", b'{"documents": [{"id": "a", "text": "' + b"y" * (1 << 20) + b'"}]}', 413, {}),
        ("POST", "/v1/workflows/ask/runs", _deep(100), 400, {}),
        ("POST", "/v1/workflows/ask/runs", _deep(100_000), 400, {}),
        ("POST", "/v1/chat/completions", b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, {}),
        ("POST", "/v1/workflows/ask/runs", b'{"input": {"question": "\xff\xfe caf\xe9"}}', 400, {}),
        ("POST", "/v1/indexes/notes/search", b'{"query": "\xc3\x28"}', 400, {}),
        ("POST", "/v1/workflows/ask/runs", b'{"input": {"question": ', 400, {}),
        ("POST", "/v1/workflows/ask/runs", b"[1, 2, 3]", 422, {}),
        ("POST", "/v1/workflows/ask/runs", {"input": {"question": "q"}, "sloo": 5}, 422, {}),
        ("POST", "/v1/workflows/ask/runs", {"input": {"question": "q", "extra": 1}}, 422, {}),
        ("POST", "/v1/workflows/ask/runs", {"input": {"question": "x" * 2001}}, 422, {}),
        ("POST", "/v1/workflows/ask/runs", {"input": {"question": "q"}, "slo": 5e-324}, 422, {}),
        ("POST", "/v1/workflows/ask/runs", {"input": {"question": "q"}, "slo": 1e308}, 422, {}),
        ("POST", "/v1/workflows/ask/runs", b'{"input": {"question": "q"}, "slo": NaN}', 422, {}),
        ("POST", "/v1/workflows/ask/runs", {"input": {"question": "q"}}, 422, {"Idempotency-Key": "x" * 500}),
        ("POST", "/v1/workflows/nope/runs", {"input": {}}, 404, {}),
        ("POST", "/v1/workflows/text2sql/runs", {"input": {"question": "q", "db": "not-registered"}}, 404, {}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "system", "content": ""}]}, 422, {}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "deadline_s": 5e-324}, 422, {}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "deadline_s": 1, "max_tokens": 2000}, 400, {}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": 0}, 422, {}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4096}, 400, {}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stop": ["a"] * 50}, 422, {}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, 422, {}),
        ("POST", "/v1/indexes", {"name": "../../etc"}, 422, {}),
        ("POST", "/v1/indexes", {"name": "fine-name", "shards": 3}, 422, {}),
        ("POST", "/v1/indexes", {"name": "fine-name", "chunk_size": 10, "chunk_overlap": 10}, 400, {}),
        ("POST", "/v1/indexes/notes/documents", {"documents": [{"id": "a", "text": "t", "metadata": {"k": {"deep": 1}}}]}, 422, {}),
        ("POST", "/v1/indexes/notes/documents", {"documents": [{"id": "", "text": "t"}]}, 422, {}),
        ("POST", "/v1/indexes/notes/documents", {"documents": []}, 422, {}),
        ("POST", "/v1/indexes/notes/search", {"query": "q", "k": 10_000}, 422, {}),
        ("POST", "/v1/indexes/no.such.index/search", {"query": "q"}, 404, {}),
        ("GET", "/v1/indexes/-bad-", None, 422, {}),
        ("GET", "/v1/runs/not-a-run-id", None, 422, {}),
        ("GET", "/v1/runs/" + "0" * 32 + "/events?after=-1", None, 422, {}),
        ("POST", "/v1/databases", {"name": "passwd", "url": outside}, 400, {}),
        ("POST", "/v1/databases", {"name": "shop2", "url": f"sqlite:///{d.databases / 'shop.sqlite'}", "mode": "rw"}, 422, {}),
        ("POST", "/v1/databases/shop/query", {"sql": "SELECT printf('%.*c', 100000000, 'x')"}, 400, {}),
        ("POST", "/v1/databases/shop/query", {"sql": "DELETE FROM users"}, 400, {}),
        ("POST", "/v1/databases/shop/query", {"sql": "SELECT 1; DROP TABLE users"}, 400, {}),
        ("POST", "/v1/databases/shop/query", {"sql": "ATTACH DATABASE '/tmp/x.db' AS x"}, 400, {}),
    ]


def _state(d: Deployment) -> str:
    sources = d.sources.of("team-a")
    runs = [(r.id, r.status.value) for r in d.runtime.runs(None, 10_000)]
    indexes = [(n, sources.indexes.get(n).describe()["chunks"]) for n in sources.indexes.names()]
    files = sorted((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in d.databases.iterdir())
    return json.dumps([runs, indexes, sources.databases.names(), files])


async def test_every_hostile_input_is_refused_with_its_4xx_and_nothing_is_written(deployment: Deployment) -> None:
    d = deployment
    h = d.headers["a"]
    async with d.client() as c:
        assert (await c.post("/v1/databases", json={"name": "shop", "url": f"sqlite:///{d.databases / 'shop.sqlite'}"}, headers=h)).status_code == 201
        assert (await c.post("/v1/indexes/notes/documents", json={"documents": [{"id": "a", "text": "kept"}]}, headers=h)).status_code == 200
        assert (await c.post("/v1/workflows/ask/runs?wait=true", json={"input": {"question": "q"}}, headers=h)).status_code == 200
        before = _state(d)
        cases = hostile(d)
        wrong = []
        for method, path, body, expected, extra in cases:
            headers = {**h, **JSON, **extra}
            if isinstance(body, bytes):
                r = await c.request(method, path, content=body, headers=headers)
            else:
                r = await c.request(method, path, json=body, headers=headers)
            doc = r.json()
            if r.status_code != expected or not doc.get("message") or not doc.get("code") or "Traceback" in r.text:
                wrong.append((method, path, str(body)[:80], expected, r.status_code, r.text[:300]))
        assert not wrong, wrong
        assert _state(d) == before
        assert (await c.get("/v1/health")).status_code == 200
    print(f"hostile inputs: {len(cases)} of {len(cases)} refused with their 4xx, nothing written")
    assert len(cases) >= 35


async def test_a_path_no_route_serves_gets_a_404_that_says_why(small_llm: EmbeddedBackend) -> None:
    app = create_app(DirectClient(small_llm), [small_llm.name], open_access=True)  # no gatekeeper: gates are off
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        off = await c.post("/v1/gates/" + "0" * 32 + "/solve", json={"answer": "word"})
        bank = await c.get("/v1/admin/gates")
        nowhere = await c.get("/v1/nowhere")
    assert off.status_code == bank.status_code == 404 and off.json()["message"] == bank.json()["message"]
    assert "SLOFLOW_GATES" in off.json()["message"]  # says what turns them on
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "not_found" and "/docs" in nowhere.json()["message"]
