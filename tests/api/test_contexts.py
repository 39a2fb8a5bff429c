"""Contexts over HTTP on the whole app with the embedded small model: submit, learn in the background,
ask with and without the learned context, replace, delete, bad input. Properties, never what the
model said."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sloflow.api.contexts import MAX_CONTEXT_CHARS
from sloflow.workflows.builtin.sleeptime.quantities import evaluate
from sloflow.workflows.contexts import ContextStore
from sloflow.workflows.run_store import RUNS_FILE
from tests.api.conftest import Deployment

pytestmark = pytest.mark.model

PROBLEM = "Ann has 3 bags of apples. Each bag holds 4 apples. She gives 5 apples to Ben."


async def _learned(c: httpx.AsyncClient, context_id: str, headers: dict[str, str], version: int = 1, timeout_s: float = 60.0) -> dict:
    start = time.monotonic()
    while True:
        got = (await c.get(f"/v1/contexts/{context_id}", headers=headers)).json()
        learned = got["learned"]
        if got["version"] == version and learned["status"] in ("ready", "failed"):
            return got
        assert time.monotonic() - start < timeout_s, got
        await asyncio.sleep(0.1)


async def _ask(c: httpx.AsyncClient, context_id: str, headers: dict[str, str], **options: object) -> dict:
    body = {"input": {"context_id": context_id, "question": "How many apples does Ann have left?", "max_tokens": 16, **options}}
    r = await c.post("/v1/workflows/sleeptime/runs?wait=true", json=body, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return r.json()["output"]


async def test_a_context_is_learned_in_the_background_and_questions_use_it(deployment: Deployment, tmp_path) -> None:
    h = deployment.headers["a"]
    async with deployment.client() as c:
        made = await c.post("/v1/contexts", json={"text": PROBLEM, "priority": 3}, headers=h)
        assert made.status_code == 201, made.text
        context = made.json()
        assert (context["version"], context["source"], context["priority"], context["text"]) == (1, "text", 3, PROBLEM)
        assert context["learned"]["status"] in ("queued", "running") and context["learned"]["version"] == 1

        without = await _ask(c, context["id"], h, use_learned=False)
        assert without["used_learned"] is False and without["output_tokens"] <= 16 and isinstance(without["answer"], str)

        ready = await _learned(c, context["id"], h)
        learned = ready["learned"]
        assert learned["status"] == "ready", learned
        assert learned["tokens"] > 0 and learned["run_id"] and learned["error"] is None
        run = (await c.get(f"/v1/runs/{learned['run_id']}", headers=h)).json()
        assert run["workflow"] == "sleeptime.learn" and run["deadline"] is None  # background: no deadline

        with_learned = await _ask(c, context["id"], h)
        assert with_learned["used_learned"] is True and with_learned["context_version"] == 1
        assert with_learned["output_tokens"] <= 16 and with_learned["learned"] is not None
        assert evaluate(learned["quantities"])[1] == []  # only lines that evaluate are kept, whatever the model wrote
        computed = await _ask(c, context["id"], h, compute=True)
        assert computed["used_learned"] is True and computed["output_tokens"] <= 16
        assert computed["computed"] is False or computed["answer"].splitlines()[-1].startswith("Answer: ")

        amortised = (await c.get(f"/v1/contexts/{context['id']}", headers=h)).json()["amortised"]
        assert amortised["questions_served"] == 3 and amortised["learn_tokens"] == learned["tokens"]
        assert amortised["learn_tokens_per_question"] == pytest.approx(learned["tokens"] / 3)

        replaced = await c.put(f"/v1/contexts/{context['id']}", json={"text": PROBLEM + " Then she buys 2 more."}, headers=h)
        assert replaced.status_code == 200 and replaced.json()["version"] == 2 and replaced.json()["priority"] == 3
        assert replaced.json()["learned"]["version"] == 2 and replaced.json()["learned"]["status"] in ("queued", "running")
        again = await _ask(c, context["id"], h)  # version 1's learned context is gone, and never used for version 2
        assert again["context_version"] == 2 and (again["used_learned"] is False or again["learned"] is not None)
        assert (await _learned(c, context["id"], h, version=2))["learned"]["status"] == "ready"

        listed = (await c.get("/v1/contexts", headers=h)).json()["contexts"]
        assert [x["id"] for x in listed] == [context["id"]] and listed[0]["text"] is None
        assert ContextStore(tmp_path / RUNS_FILE).get(context["id"], "team-a").version == 2  # on disk, for the next process

        assert (await c.delete(f"/v1/contexts/{context['id']}", headers=h)).status_code == 204
        gone = await c.get(f"/v1/contexts/{context['id']}", headers=h)
        assert gone.status_code == 404 and "POST /v1/contexts" in gone.json()["message"]


async def test_a_registered_database_is_a_context_of_its_schema_and_values(deployment: Deployment) -> None:
    h = deployment.headers["b"]
    async with deployment.client() as c:
        added = await c.post("/v1/databases", json={"name": "shop", "url": str(deployment.databases / "shop.sqlite")}, headers=h)
        assert added.status_code == 201, added.text
        made = await c.post("/v1/contexts", json={"database": "shop"}, headers=h)
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["source"] == "database" and body["database"] == "shop" and "CREATE TABLE users" in body["text"]
        assert (await c.delete(f"/v1/contexts/{body['id']}", headers=h)).status_code == 204


async def test_bad_input_gets_a_4xx_that_says_what_to_fix_and_writes_nothing(deployment: Deployment) -> None:
    h = deployment.headers["a"]
    unknown = "f" * 32
    async with deployment.client() as c:
        before = (await c.get("/v1/contexts", headers=h)).json()["contexts"]
        cases = [
            ("POST", "/v1/contexts", {"text": ""}, 422, "text"),
            ("POST", "/v1/contexts", {"text": "   \n"}, 422, "only whitespace"),
            ("POST", "/v1/contexts", {}, 422, "exactly one of"),
            ("POST", "/v1/contexts", {"text": "x", "database": "shop"}, 422, "exactly one of"),
            ("POST", "/v1/contexts", {"text": "word " * 1000}, 413, "send a shorter one"),  # over half the model's context
            ("POST", "/v1/contexts", {"text": "x" * (MAX_CONTEXT_CHARS + 1)}, 422, "text"),
            ("POST", "/v1/contexts", {"text": "x", "priority": 11}, 422, "priority"),
            ("POST", "/v1/contexts", {"database": "nope"}, 404, "nope"),
            ("GET", f"/v1/contexts/{unknown}", None, 404, "no context"),
            ("PUT", f"/v1/contexts/{unknown}", {"text": "x"}, 404, "no context"),
            ("DELETE", f"/v1/contexts/{unknown}", None, 404, "no context"),
            ("GET", "/v1/contexts/not-an-id", None, 422, "context_id"),
            ("POST", "/v1/workflows/sleeptime/runs", {"input": {"context_id": unknown, "question": "q"}}, 404, "no context"),
            ("POST", "/v1/workflows/sleeptime/runs", {"input": {"context_id": unknown, "question": ""}}, 422, "question"),
        ]
        for method, path, body, status, says in cases:
            r = await c.request(method, path, json=body, headers=h)
            assert r.status_code == status, (method, path, body and str(body)[:60], r.status_code, r.text[:300])
            assert says in r.json()["message"], (path, r.json()["message"])
        made = (await c.post("/v1/contexts", json={"text": PROBLEM}, headers=h)).json()
        refused = await c.put(f"/v1/contexts/{made['id']}", json={"text": "word " * 1000}, headers=h)
        assert refused.status_code == 413
        assert (await c.get(f"/v1/contexts/{made['id']}", headers=h)).json()["version"] == 1  # unchanged
        after = (await c.get("/v1/contexts", headers=h)).json()["contexts"]
        assert [x["id"] for x in after] == [made["id"]] + [x["id"] for x in before]
