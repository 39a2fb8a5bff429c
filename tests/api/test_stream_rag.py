"""A streaming run over HTTP on the whole app with the embedded small model: open a turn, send
revisions, read the answer's tokens from the SSE events (after the final input only); bad
revision sequences and input to other runs get their 4xx. Properties, never what the model said."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from sloflow.workflows.builtin.stream_rag.triggers import typed
from tests.api.conftest import Deployment
from tests.workflows.test_api_runs import sse

pytestmark = pytest.mark.model

PASSAGES = {
    "Paris": "Paris is the capital of France, on the river Seine.",
    "Lyon": "Lyon is a city in France where the Rhone meets the Saone.",
    "Berlin": "Berlin is the capital of Germany, on the river Spree.",
}


async def _index(c: httpx.AsyncClient, h: dict[str, str]) -> None:
    assert (await c.post("/v1/indexes", json={"name": "cities"}, headers=h)).status_code == 201
    docs = [{"id": t, "text": f"{t}. {text}"} for t, text in PASSAGES.items()]
    assert (await c.post("/v1/indexes/cities/documents", json={"documents": docs}, headers=h)).status_code == 200


async def _open(c: httpx.AsyncClient, h: dict[str, str], **input: object) -> str:
    r = await c.post("/v1/workflows/stream_rag/runs", json={"input": {"index": "cities", "k": 2, "max_tokens": 8, **input}}, headers=h)
    assert r.status_code == 202, r.text
    return r.json()["id"]


async def test_a_typed_question_is_answered_by_tokens_after_its_final_input(deployment: Deployment) -> None:
    h = deployment.headers["a"]
    async with deployment.client() as c:
        await _index(c, h)
        run = await _open(c, h)
        texts = typed("Which river runs through the capital of France?")
        for i, text in enumerate(texts):
            r = await c.post(f"/v1/runs/{run}/input", json={"revision": i, "text": text, "is_final": i == len(texts) - 1}, headers=h)
            assert r.status_code == 202, r.text
            assert r.json()["revision"] == i
            await asyncio.sleep(0.05)
        events = sse((await c.get(f"/v1/runs/{run}/events", headers=h)).text)
        done = (await c.get(f"/v1/runs/{run}", headers=h)).json()
    assert done["status"] == "succeeded", done["error"]
    out = done["output"]
    assert out["question"] == texts[-1].strip() and out["revisions"] == len(texts)
    assert out["speculation"]["speculation_fired"] >= 1 and isinstance(out["answer"], str)
    assert [h["doc_id"] for h in out["retrieved"]] and out["ttft_s"] is not None and out["ttft_s"] >= 0
    final = next(i for i, e in enumerate(events) if e["event"] == "progress" and e["data"]["data"].get("message") == "input final")
    tokens = [i for i, e in enumerate(events) if e["event"] == "token"]
    assert tokens and min(tokens) > final  # nothing of the answer (or of any speculation) before the input was final
    assert "".join(events[i]["data"]["data"]["text"] for i in tokens).strip() == out["answer"]
    assert all(set(json.dumps(e["data"])).isdisjoint("\x00") for e in events)


async def test_bad_revision_sequences_get_their_4xx_and_an_abandoned_turn_ends(deployment: Deployment) -> None:
    h, other = deployment.headers["a"], deployment.headers["b"]
    async with deployment.client() as c:
        await _index(c, h)
        run = await _open(c, h, idle_s=0.5)
        post = lambda body, who=h: c.post(f"/v1/runs/{run}/input", json=body, headers=who)  # noqa: E731
        assert (await post({"revision": 1, "text": "Which river"})).status_code == 202
        dup = await post({"revision": 1, "text": "Which river"})
        assert dup.status_code == 409 and "duplicate" in dup.json()["message"]
        late = await post({"revision": 0, "text": "Which"})
        assert late.status_code == 409 and "out of order" in late.json()["message"]
        assert (await post({"revision": "2", "text": "x"})).status_code == 422  # a string is not a revision number
        assert (await post({"revision": 2, "text": "x", "extra": 1})).status_code == 422
        assert (await post({"revision": 2, "text": "Which river"}, other)).status_code == 404  # another tenant's run
        for _ in range(100):  # no input for idle_s: the run ends by itself
            ended = (await c.get(f"/v1/runs/{run}", headers=h)).json()
            if ended["status"] != "running" and ended["status"] != "queued":
                break
            await asyncio.sleep(0.05)
        assert ended["status"] == "cancelled" and ended["error"]["code"] == "turn_idle" and "no input" in ended["error"]["message"]
        gone = await post({"revision": 3, "text": "Which river runs"})
        assert gone.status_code == 409 and "has ended" in gone.json()["message"]

        finished = await _open(c, h)
        assert (await c.post(f"/v1/runs/{finished}/input", json={"revision": 0, "text": "Where is Lyon?", "is_final": True}, headers=h)).status_code == 202
        after = await c.post(f"/v1/runs/{finished}/input", json={"revision": 1, "text": "Where is Lyon?!"}, headers=h)
        assert after.status_code == 409 and ("final input" in after.json()["message"] or "has ended" in after.json()["message"])

        ask = await c.post("/v1/workflows/ask/runs?wait=true", json={"input": {"question": "hi"}}, headers=h)
        wrong = await c.post(f"/v1/runs/{ask.json()['id']}/input", json={"revision": 0, "text": "hi"}, headers=h)
        assert wrong.status_code == 409 and "not" in wrong.json()["message"] and "stream_rag" in wrong.json()["message"]
        missing = await c.post("/v1/workflows/stream_rag/runs", json={"input": {"index": "nope"}}, headers=h)
        assert missing.status_code == 404 and "nope" in missing.json()["message"]
