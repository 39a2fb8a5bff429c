"""Two tenants, every route that takes an id or lists objects, in both directions: nothing of the
other tenant is visible or touchable; another tenant's id answers 404, as an unknown one does."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.api.conftest import Deployment

pytestmark = pytest.mark.isolation


async def _own_objects(c: httpx.AsyncClient, d: Deployment, who: str, tag: str) -> dict[str, str]:
    """Create a finished run, an index with a document and a database for one tenant."""
    h = d.headers[who]
    run = await c.post("/v1/workflows/ask/runs?wait=true", json={"input": {"question": f"hi {tag}"}}, headers=h)
    assert run.status_code == 200, run.text
    index = f"notes-{tag}"
    added = await c.post(f"/v1/indexes/{index}/documents", json={"documents": [{"id": "d1", "text": f"secret of {tag}: the Nile"}]}, headers=h)
    assert added.status_code == 200, added.text
    db = f"db-{tag}"
    made = await c.post("/v1/databases", json={"name": db, "url": f"sqlite:///{d.databases / 'shop.sqlite'}"}, headers=h)
    assert made.status_code == 201, made.text
    context = await c.post("/v1/contexts", json={"text": f"secret context of {tag}"}, headers=h)
    assert context.status_code == 201, context.text
    return {"run": run.json()["id"], "index": index, "db": db, "context": context.json()["id"]}


def _snapshot(d: Deployment, tenant: str) -> str:
    """Everything a tenant owns, as one digest: runs and their events, indexes and documents, databases, contexts."""
    sources = d.sources.of(tenant)
    # learn runs move on in the background (queued, running, succeeded) whoever calls; they are not what is compared
    runs = [(r.id, r.status.value, len(d.runtime.store.events(r.id))) for r in d.runtime.runs(tenant) if r.workflow != "sleeptime.learn"]
    indexes = [(n, sources.indexes.get(n).describe()["chunks"], sorted(sources.indexes.get(n).documents())) for n in sources.indexes.names()]
    contexts = [(c.id, c.version, c.text, c.questions) for c in d.contexts.contexts(tenant)]
    state = json.dumps([runs, indexes, sources.databases.names(), contexts], default=str, sort_keys=True)
    return hashlib.sha256(state.encode()).hexdigest()


async def test_no_route_shows_or_touches_the_other_tenants_objects(deployment: Deployment) -> None:
    d = deployment
    checks = 0
    async with d.client() as c:
        owned = {"a": await _own_objects(c, d, "a", "a"), "b": await _own_objects(c, d, "b", "b")}
        tenant = {"a": "team-a", "b": "team-b"}
        for owner, other in (("a", "b"), ("b", "a")):
            mine, h = owned[owner], d.headers[other]
            before = _snapshot(d, tenant[owner])
            run, index, db, context = mine["run"], mine["index"], mine["db"], mine["context"]
            by_id = [
                ("GET", f"/v1/runs/{run}", None),
                ("POST", f"/v1/runs/{run}/cancel", None),
                ("GET", f"/v1/runs/{run}/events", None),
                ("GET", f"/v1/indexes/{index}", None),
                ("POST", f"/v1/indexes/{index}/search", {"query": "Nile"}),
                ("DELETE", f"/v1/indexes/{index}/documents/d1", None),
                ("DELETE", f"/v1/indexes/{index}", None),
                ("GET", f"/v1/databases/{db}", None),
                ("POST", f"/v1/databases/{db}/query", {"sql": "SELECT name FROM users"}),
                ("DELETE", f"/v1/databases/{db}", None),
                ("GET", f"/v1/sources/{index}", None),
                ("GET", f"/v1/sources/sql:{db}", None),
                ("GET", f"/v1/sources/schema:{db}", None),
                ("POST", "/v1/workflows/text2sql/runs", {"input": {"question": "how many users?", "db": db}}),
                ("GET", f"/v1/contexts/{context}", None),
                ("PUT", f"/v1/contexts/{context}", {"text": "overwritten"}),
                ("DELETE", f"/v1/contexts/{context}", None),
                ("POST", "/v1/workflows/sleeptime/runs", {"input": {"context_id": context, "question": "what is the secret?"}}),
                ("POST", "/v1/workflows/sleeptime.learn/runs", {"input": {"context_id": context, "version": 1}}),
                ("POST", "/v1/workflows/ask/runs", {"input": {"question": "q"}, "unknown": 1}),  # 422 before any lookup
            ]
            for method, path, body in by_id:
                r = await c.request(method, path, json=body, headers=h)
                expected = 422 if "unknown" in (body or {}) else 404
                assert r.status_code == expected, (other, method, path, r.status_code, r.text)
                checks += 1
            # Ingesting under the other's index name makes the caller's own index; the owner's is untouched.
            made = await c.post(f"/v1/indexes/{index}/documents", json={"documents": [{"id": "x", "text": "mine"}]}, headers=h)
            assert made.status_code == 200
            found = (await c.post(f"/v1/indexes/{index}/search", json={"query": "Nile secret", "k": 5}, headers=h)).json()["hits"]
            assert [hit["doc_id"] for hit in found] == ["x"]
            assert (await c.delete(f"/v1/indexes/{index}", headers=h)).status_code == 204
            checks += 2
            # Every list holds only the caller's own objects.
            lists = {
                "/v1/runs": lambda j: [x["id"] for x in j["runs"]],
                "/v1/indexes": lambda j: [x["name"] for x in j["indexes"]],
                "/v1/databases": lambda j: [x["name"] for x in j["databases"]],
                "/v1/sources": lambda j: [x["name"] for x in j["sources"]],
                "/v1/contexts": lambda j: [x["id"] for x in j["contexts"]],
            }
            for path, names in lists.items():
                r = await c.get(path, headers=h)
                assert r.status_code == 200
                listed = names(r.json())
                assert not {run, index, db, context, f"sql:{db}", f"schema:{db}"} & set(listed), (other, path, listed)
                checks += 1
            events = await c.get(f"/v1/runs/{owned[other]['run']}/events", headers=h)
            assert events.status_code == 200 and "run_finished" in events.text  # its own run streams
            assert _snapshot(d, tenant[owner]) == before  # nothing of the owner's changed
            checks += 2
    print(f"isolation: {checks} route checks across 2 tenants in both directions")
    assert checks >= 40


async def test_plan_memory_and_registered_functions_are_per_tenant(deployment: Deployment) -> None:
    from sloflow.planners.plans.plan import parse_plan
    from sloflow.planners.plans.memory import PlanMemory

    d = deployment
    memory = PlanMemory(embedder=d.sources.base.indexes.embedder)
    from sloflow.workflows.builtin.tools import TenantTools

    tools_of = TenantTools(d.sources, memory)
    plan = parse_plan(json.dumps([{"name": "sql:shop", "label": "var1", "arguments": {"sql": "SELECT 1"}}]))
    tools_of("team-a")["plan_memory"].remember("default", "how many users", plan, ["sql:shop"])
    assert tools_of("team-a")["plan_memory"].examples("default", "how many users", ["sql:shop"])
    assert tools_of("team-b")["plan_memory"].examples("default", "how many users", ["sql:shop"]) == []
    d.sources.of("team-a").register_function("secret_fn", lambda x: x, description="a's own")
    async with d.client() as c:
        assert (await c.get("/v1/sources/secret_fn", headers=d.headers["b"])).status_code == 404
        assert (await c.get("/v1/sources/secret_fn", headers=d.headers["a"])).status_code == 200
        refused = await c.post("/v1/workflows/reaper/runs", json={"input": {"question": "q", "sources": ["secret_fn"]}}, headers=d.headers["b"])
        assert refused.status_code == 404 and "secret_fn" in refused.json()["message"]  # refused at submission
