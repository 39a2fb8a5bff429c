"""The OpenAI-compatible chat endpoint and the error contract, against the real test model."""

from __future__ import annotations

import json

import httpx
import pytest

CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 12, "temperature": 0}


async def test_health_ready_and_models(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/health")).json() == {"status": "ok"}
    ready = (await api.get("/v1/ready")).json()
    assert ready["status"] == "ready" and ready["models"] == ["smollm2-135m"]
    models = (await api.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["smollm2-135m"]


async def test_chat_completion(api: httpx.AsyncClient) -> None:
    resp = await api.post("/v1/chat/completions", json=CHAT)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["object"] == "chat.completion"
    assert doc["model"] == "smollm2-135m"
    assert doc["choices"][0]["message"]["role"] == "assistant"
    assert doc["choices"][0]["message"]["content"].strip()
    usage = doc["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_chat_completion_streamed_as_sse(api: httpx.AsyncClient) -> None:
    resp = await api.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    data = [line[5:].strip() for line in resp.text.splitlines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip()
    finish, usage = chunks[-1]["choices"][0]["finish_reason"], chunks[-1]["usage"]
    assert finish in ("stop", "length") and 0 < usage["completion_tokens"] <= CHAT["max_tokens"]
    assert finish == "stop" or usage["completion_tokens"] == CHAT["max_tokens"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])  # one final chunk


async def test_json_response_format(api: httpx.AsyncClient) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    body = {
        **CHAT,
        "max_tokens": 48,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    }
    resp = await api.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200
    doc = resp.json()
    choice, usage = doc["choices"][0], doc["usage"]
    # Whatever the model says: a finished answer is the schema's JSON; one cut by max_tokens says so.
    if choice["finish_reason"] == "stop":
        assert isinstance(json.loads(choice["message"]["content"])["answer"], str)
    else:
        assert choice["finish_reason"] == "length" and usage["completion_tokens"] == 48


async def test_json_cut_by_max_tokens_says_length(api: httpx.AsyncClient) -> None:
    # No JSON object with an "answer" string fits in 3 tokens, so this answer is always cut.
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    body = {**CHAT, "max_tokens": 3, "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}
    doc = (await api.post("/v1/chat/completions", json=body)).json()
    assert doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"]["completion_tokens"] == 3
    with pytest.raises(json.JSONDecodeError):
        json.loads(doc["choices"][0]["message"]["content"])
    streamed = await api.post("/v1/chat/completions", json={**body, "stream": True})
    data = [line[5:].strip() for line in streamed.text.splitlines() if line.startswith("data:")]
    assert json.loads(data[-2])["choices"][0]["finish_reason"] == "length"


async def test_malformed_requests_get_4xx_with_a_message(api: httpx.AsyncClient) -> None:
    cases = [
        ({"max_tokens": 5}, 422, "messages"),
        ({**CHAT, "max_tokens": -3}, 422, "max_tokens"),
        ({**CHAT, "model": "gpt-17"}, 404, "gpt-17"),
        ({**CHAT, "messages": []}, 422, "messages"),
        ({**CHAT, "messages": [{"role": "wizard", "content": "x"}]}, 422, "role"),
        ({**CHAT, "response_format": {"type": "json_schema"}}, 400, "json_schema"),
    ]
    for body, status, mentions in cases:
        resp = await api.post("/v1/chat/completions", json=body)
        assert resp.status_code == status, (body, resp.text)
        doc = resp.json()
        assert set(doc) == {"code", "message", "details"}
        assert mentions in doc["message"], doc
        assert "Traceback" not in resp.text

    resp = await api.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["message"]

    # Still serving after all of that.
    assert (await api.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_prompt_over_context_is_400_not_500(api: httpx.AsyncClient) -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "word " * 5000}]}
    resp = await api.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400
    assert "context" in resp.json()["message"].lower() or "token" in resp.json()["message"].lower()


async def test_deadline_and_priority_fields(api: httpx.AsyncClient) -> None:
    ok = await api.post("/v1/chat/completions", json={**CHAT, "deadline_s": 30, "priority": "background"})
    assert ok.status_code == 200
    bad = await api.post("/v1/chat/completions", json={**CHAT, "deadline_s": -1})
    assert bad.status_code == 422 and "deadline_s" in bad.json()["message"]
