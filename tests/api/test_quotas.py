"""Keys, roles and quotas: 401 without a key, 403 for members on admin routes, 429 with Retry-After
over a quota while another tenant is served as before, and idempotent run creation."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time

import httpx

from tests.api.conftest import Deployment

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "deadline_s": 30}


async def test_every_v1_route_but_health_and_ready_needs_a_bearer_key(deployment: Deployment) -> None:
    d = deployment
    async with d.client() as c:
        assert (await c.get("/v1/health")).status_code == 200
        assert (await c.get("/v1/ready")).status_code == 200
        spec = (await c.get("/openapi.json")).json()
        checked = 0
        for path, item in spec["paths"].items():
            if not path.startswith("/v1/") or path in ("/v1/health", "/v1/ready"):
                continue
            for method in item:
                concrete = path.replace("{run_id}", "0" * 32).replace("{key_id}", "0" * 12)
                concrete = concrete.replace("{tenant}", "team-a").replace("{doc_id}", "d1").replace("{worker_id}", "w1")
                concrete = concrete.replace("{name}", "abc")
                r = await c.request(method, concrete, json={})
                assert r.status_code == 401, (method, path, r.text)
                assert "Authorization: Bearer" in r.json()["message"] and r.headers["www-authenticate"] == "Bearer"
                checked += 1
        assert checked >= 25
        wrong = await c.get("/v1/runs", headers={"Authorization": "Bearer sf-000000000000-" + "x" * 43})
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["message"]
        basic = await c.get("/v1/runs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401 and "bearer" in basic.json()["message"]


async def test_keys_are_stored_hashed_listed_without_secrets_and_revoked_at_once(deployment: Deployment) -> None:
    d = deployment
    async with d.client() as c:
        member = await c.post("/v1/admin/keys", json={"tenant": "team-c"}, headers=d.headers["a"])
        assert member.status_code == 403 and "admin key" in member.json()["message"]
        made = await c.post("/v1/admin/keys", json={"tenant": "team-c", "label": "ci"}, headers=d.headers["admin"])
        assert made.status_code == 201
        key, key_id = made.json()["key"], made.json()["id"]
        h = {"Authorization": f"Bearer {key}"}
        me = (await c.get("/v1/tenants/me", headers=h)).json()
        assert me["tenant"] == "team-c" and me["role"] == "member" and me["quotas"]["concurrent_runs"] >= 1
        listed = (await c.get("/v1/admin/keys", headers=d.headers["admin"])).json()["keys"]
        assert key_id in [k["id"] for k in listed] and all("key" not in k for k in listed)
        secret = key.split("-", 2)[2]  # sf-<id>-<secret>; a url-safe secret may hold "-" itself
        raw = d.keys._db.execute("SELECT * FROM keys").fetchall()
        assert not any(secret in str(row) for row in raw)  # only a salted hash is kept
        assert (await c.post(f"/v1/admin/keys/{key_id}/revoke", headers=d.headers["admin"])).json()["revoked_at"]
        assert (await c.get("/v1/tenants/me", headers=h)).status_code == 401


async def test_over_its_rate_a_tenant_gets_429_with_retry_after_and_the_other_is_unaffected(deployment: Deployment) -> None:
    d = deployment
    d.keys.set_quotas("team-a", requests_per_min=20)

    async def timed(c: httpx.AsyncClient, who: str) -> tuple[int, float]:
        t0 = time.perf_counter()
        r = await c.get("/v1/tenants/me", headers=d.headers[who])
        return r.status_code, time.perf_counter() - t0

    async with d.client() as c:
        alone = [(await timed(c, "b"))[1] for _ in range(30)]
        flooding = True
        a_statuses: list[int] = []

        async def flood() -> None:  # a keeps sending, far over its rate
            while flooding:
                a_statuses.append((await timed(c, "a"))[0])
                await asyncio.sleep(0)  # a refusal never waits on I/O: let the others in

        floods = [asyncio.create_task(flood()) for _ in range(3)]
        while len(a_statuses) < 30 and not any(f.done() for f in floods):
            await asyncio.sleep(0.005)
        for f in floods:
            if f.done():
                f.result()  # a flood that failed says why
        during = [await timed(c, "b") for _ in range(30)]
        flooding = False
        await asyncio.gather(*floods)
        assert a_statuses.count(200) == 20 and a_statuses.count(429) == len(a_statuses) - 20
        assert all(status == 200 for status, _ in during)
        over = await c.get("/v1/tenants/me", headers=d.headers["a"])
        assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
        assert over.json()["details"]["quota"] == "requests_per_min"
        # b's latency is unaffected: a's refusals are cheap (no store, no model), so b waits at most
        # for the few requests in flight beside it in this one event loop, milliseconds, never for
        # a's window (Retry-After above, up to a minute). The slack keeps a loaded machine's jitter out.
        assert statistics.median(t for _, t in during) < statistics.median(alone) * 4 + 0.1
        assert max(t for _, t in during) < 5.0


async def test_concurrent_runs_tokens_and_priority_are_held_to_the_plan(deployment: Deployment) -> None:
    d = deployment
    d.keys.set_quotas("team-a", concurrent_runs=1)
    async with d.client() as c:
        held = await c.post("/v1/workflows/ask/runs", json={"input": {"question": "q", "hold": True}}, headers=d.headers["a"])
        assert held.status_code == 202
        second = await c.post("/v1/workflows/ask/runs", json={"input": {"question": "q"}}, headers=d.headers["a"])
        assert second.status_code == 429 and second.headers["retry-after"] and "concurrent" in second.json()["details"]["quota"]
        assert (await c.post("/v1/workflows/ask/runs?wait=true", json={"input": {"question": "q"}}, headers=d.headers["b"])).status_code == 200
        me = (await c.get("/v1/tenants/me", headers=d.headers["a"])).json()
        assert me["usage"]["active_runs"] == 1
        d.gate.set()
        await d.runtime.wait(held.json()["id"])

        _, key = d.keys.create("team-t")
        t = {"Authorization": f"Bearer {key}"}
        d.keys.set_quotas("team-t", tokens_per_min=5)
        too_long = await c.post("/v1/chat/completions", json={**CHAT, "max_tokens": 6}, headers=t)
        assert too_long.status_code == 400 and "tokens" in too_long.json()["message"]  # could never fit its quota
        assert (await c.post("/v1/chat/completions", json=CHAT, headers=t)).status_code == 200
        over = await c.post("/v1/chat/completions", json=CHAT, headers=t)
        assert over.status_code == 429 and over.json()["details"]["quota"] == "tokens_per_min" and int(over.headers["retry-after"]) >= 1
        assert (await c.get("/v1/tenants/me", headers=t)).json()["usage"]["tokens_last_min"] >= 5
        refused_run = await c.post("/v1/workflows/ask/runs", json={"input": {"question": "q"}}, headers=t)
        assert refused_run.status_code == 429  # refused at submission, not failed at its first call

        set_by_admin = await c.put("/v1/admin/tenants/team-a/quotas", json={"max_priority": "background"}, headers=d.headers["admin"])
        assert set_by_admin.status_code == 200 and set_by_admin.json()["quotas"]["max_priority"] == "background"
        urgent = await c.post("/v1/chat/completions", json=CHAT, headers=d.headers["a"])
        assert urgent.status_code == 403 and "background" in urgent.json()["message"]
        assert (await c.post("/v1/chat/completions", json={**CHAT, "priority": "background"}, headers=d.headers["a"])).status_code == 200
        by_member = await c.put("/v1/admin/tenants/team-a/quotas", json={"max_priority": "interactive"}, headers=d.headers["a"])
        assert by_member.status_code == 403


async def test_a_retry_with_the_same_idempotency_key_returns_the_first_run(deployment: Deployment) -> None:
    d = deployment
    async with d.client() as c:
        body = {"input": {"question": "once"}}
        h = {**d.headers["a"], "Idempotency-Key": "order-42"}
        first, again = await asyncio.gather(
            c.post("/v1/workflows/ask/runs", json=body, headers=h), c.post("/v1/workflows/ask/runs", json=body, headers=h)
        )
        assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
        later = await c.post("/v1/workflows/ask/runs?wait=true", json=body, headers=h)
        assert later.json()["id"] == first.json()["id"] and later.json()["status"] == "succeeded"
        assert len((await c.get("/v1/runs", headers=d.headers["a"])).json()["runs"]) == 1
        other_body = await c.post("/v1/workflows/ask/runs", json={"input": {"question": "twice"}}, headers=h)
        assert other_body.status_code == 409 and "Idempotency-Key" in other_body.json()["message"]
        # The same key from another tenant is that tenant's own.
        theirs = await c.post("/v1/workflows/ask/runs", json=body, headers={**d.headers["b"], "Idempotency-Key": "order-42"})
        assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]


async def test_a_background_plan_serves_a_tenants_run_calls_on_idle_capacity_only() -> None:
    from sloflow.api.quotas import Meter, MeteredClient
    from sloflow.llm.client import CallContext
    from sloflow.llm.types import Completion, GenerateRequest
    from sloflow.tenancy import KeyStore

    seen: list[CallContext] = []

    class Recording:
        async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
            seen.append(ctx)
            return Completion(text="x", prompt_tokens=3, completion_tokens=1, ttft_s=0.0, total_s=0.0)

        async def stream(self, request, ctx):  # pragma: no cover - not used here
            raise NotImplementedError

    keys = KeyStore(":memory:")
    keys.set_quotas("cheap", max_priority="background")
    client = MeteredClient(Recording(), Meter(keys))  # type: ignore[arg-type]
    urgent = CallContext(run_id="r", stage="s", deadline=time.time() + 5, budget_s=2.0, tenant="cheap")
    await client.generate(GenerateRequest(prompt="q", max_tokens=1), urgent)
    await client.generate(GenerateRequest(prompt="q", max_tokens=1), dataclasses.replace(urgent, tenant="rich"))
    assert seen[0].priority == "background" and seen[0].deadline is None  # capped by its plan
    assert seen[1].priority == "interactive" and seen[1].deadline == urgent.deadline
