"""The indexes and databases routers, mounted on an app with the project's error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from sloflow.api import databases, indexes
from sloflow.api.auth import OpenAccess
from sloflow.api.errors import install_error_handlers
from sloflow.retrieval.tenant_sources import TenantSources
from sloflow.retrieval.sources import SourceRegistry


@pytest.fixture
async def client(sources: SourceRegistry, shop_db: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(indexes.router)
    app.include_router(databases.router)
    app.state.sources = TenantSources(sources)
    app.state.auth = OpenAccess()
    app.state.database_roots = [shop_db.parent]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_ingest_search_and_delete_over_http(client: httpx.AsyncClient) -> None:
    docs = {"documents": [{"id": "a", "text": "The Nile flows through Egypt.", "metadata": {"kind": "geo"}}, {"id": "b", "text": "Tea leaves."}]}
    first = await client.post("/v1/indexes/notes/documents", json=docs)
    assert first.status_code == 200 and first.json() | {"index": "notes"} == {"index": "notes", "added": 2, "replaced": 0, "unchanged": 0, "chunks": 2}
    assert (await client.post("/v1/indexes/notes/documents", json=docs)).json()["unchanged"] == 2
    found = await client.post("/v1/indexes/notes/search", json={"query": "river in Egypt", "k": 1})
    hit = found.json()["hits"][0]
    assert hit["doc_id"] == "a" and hit["metadata"] == {"kind": "geo"} and hit["store"] == "hybrid" and hit["index"] == "notes"
    listed = (await client.get("/v1/indexes")).json()["indexes"]
    assert [(i["name"], i["documents"]) for i in listed] == [("notes", 2)]
    assert (await client.delete("/v1/indexes/notes/documents/a")).status_code == 204
    assert (await client.delete("/v1/indexes/notes/documents/a")).status_code == 404
    assert (await client.get("/v1/indexes/notes")).json()["chunks"] == 1
    assert (await client.delete("/v1/indexes/notes")).status_code == 204
    assert (await client.get("/v1/indexes/notes")).status_code == 404


async def test_bad_index_requests_say_what_to_fix(client: httpx.AsyncClient) -> None:
    bad_name = await client.post("/v1/indexes", json={"name": "a b"})
    assert bad_name.status_code == 422 and "name: String should match pattern" in bad_name.json()["message"]
    nested = await client.post("/v1/indexes/notes/documents", json={"documents": [{"id": "a", "text": "x", "metadata": {"k": [1]}}]})
    assert nested.status_code == 422 and nested.json()["code"] == "invalid_request"
    assert (await client.post("/v1/indexes", json={"name": "fine-name"})).status_code == 201
    assert (await client.post("/v1/indexes", json={"name": "fine-name"})).status_code == 409
    assert (await client.post("/v1/indexes/missing/search", json={"query": "x"})).status_code == 404


async def test_databases_register_describe_and_query(client: httpx.AsyncClient, shop_db: Path) -> None:
    created = await client.post("/v1/databases", json={"name": "shop2", "url": f"sqlite:///{shop_db}", "max_rows": 2})
    assert created.status_code == 201
    tables = {t["name"]: t for t in created.json()["tables"]}
    assert tables["users"]["columns"][1]["samples"] == ["Ada", "Bob", "Cy"]
    names = [d["name"] for d in (await client.get("/v1/databases")).json()["databases"]]
    assert names == ["shop", "shop2"]
    rows = await client.post("/v1/databases/shop2/query", json={"sql": "SELECT id FROM orders ORDER BY id"})
    assert rows.json()["rows"] == [[1], [2]] and rows.json()["truncated"] is True
    refused = await client.post("/v1/databases/shop2/query", json={"sql": "SELECT 1; DROP TABLE users"})
    assert refused.status_code == 400
    assert refused.json()["code"] == "unsafe_sql" and refused.json()["details"]["rule"] == "one_statement"
    assert (await client.delete("/v1/databases/shop2")).status_code == 204
    assert (await client.get("/v1/databases/shop2")).status_code == 404


async def test_a_registered_database_is_prepared_for_linking_before_the_first_question(
    client: httpx.AsyncClient, sources: SourceRegistry, shop_db: Path
) -> None:
    import sqlite3

    wide = shop_db.parent / "wide.sqlite"
    with sqlite3.connect(wide) as conn:  # more tables than text2sql shows whole
        for i in range(8):
            conn.execute(f"CREATE TABLE part{i} (id INTEGER PRIMARY KEY, label TEXT)")
            conn.execute(f"INSERT INTO part{i} (label) VALUES ('item {i}')")
    assert (await client.post("/v1/databases", json={"name": "wide", "url": str(wide)})).status_code == 201
    # The response's background task has run when the client returns (one ASGI call).
    assert "wide" in sources._schema_indexes
    assert sources.databases.get("wide")._text_values == {f"part{i}.label": [f"item {i}"] for i in range(8)}
    small = await client.post("/v1/databases", json={"name": "shop3", "url": str(shop_db)})
    assert small.status_code == 201 and "shop3" not in sources._schema_indexes  # shown whole: no index needed


async def test_databases_outside_the_allowed_folders_are_refused(client: httpx.AsyncClient, tmp_path: Path) -> None:
    from tests.retrieval.conftest import make_shop_db

    outside = make_shop_db(tmp_path / "elsewhere.sqlite")
    response = await client.post("/v1/databases", json={"name": "other", "url": str(outside)})
    assert response.status_code == 400 and "outside" in response.json()["message"]


async def test_sources_list_registered_functions_with_their_schemas(sources: SourceRegistry) -> None:
    from sloflow.api import sources as source_routes

    def order_status(order_id: str) -> dict:
        """The status of an order."""
        return {"order_id": order_id, "status": "delivered"}

    sources.register_function("order_status", order_status, output={"type": "object", "properties": {"status": {}}})
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(source_routes.router)
    app.state.sources = TenantSources(sources)
    app.state.auth = OpenAccess()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        listed = {s["name"]: s for s in (await c.get("/v1/sources")).json()["sources"]}
        assert {"sql:shop", "schema:shop", "order_status"} <= set(listed)
        fn = listed["order_status"]
        assert fn["kind"] == "function" and fn["description"] == "The status of an order."
        assert fn["parameters"]["required"] == ["order_id"] and fn["output"]["properties"] == {"status": {}}
        assert (await c.get("/v1/sources/order_status")).json() == fn
        missing = await c.get("/v1/sources/nope")
        assert missing.status_code == 404 and "GET /v1/sources" in missing.json()["message"]
    assert await sources.call("order_status", {"order_id": "#W1"}) == {"order_id": "#W1", "status": "delivered"}
