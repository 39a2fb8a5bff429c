"""The sources registry: what a planner lists, and calling indexes, databases, schemas and functions."""

from __future__ import annotations

import pytest

from sloflow.errors import Conflict, InvalidRequest, NotFound, UnsafeSql
from sloflow.retrieval.chunking import Document
from sloflow.retrieval.document_index import IndexConfig
from sloflow.retrieval.sources import SourceRegistry


def order_status(order_id: int, verbose: bool = False) -> dict:
    """Status of one order by its id."""
    return {"order_id": order_id, "status": "shipped", "verbose": verbose}


async def test_a_planner_sees_every_source_with_a_description_and_argument_schema(sources: SourceRegistry) -> None:
    sources.indexes.create("policies", IndexConfig(description="the store's return and refund policies"))
    sources.register_function("order_status", order_status)
    listed = {s.name: s for s in sources.catalog()}
    assert set(listed) == {"policies", "sql:shop", "schema:shop", "order_status"}
    assert listed["policies"].kind == "index" and "refund" in listed["policies"].description
    assert "users" in listed["sql:shop"].description and listed["sql:shop"].parameters["required"] == ["sql"]
    fn = listed["order_status"]
    assert fn.description == "Status of one order by its id."
    assert fn.parameters["properties"]["order_id"]["type"] == "integer" and fn.parameters["required"] == ["order_id"]


async def test_calling_sources_by_name(sources: SourceRegistry) -> None:
    sources.indexes.get("policies", create=True).add_documents(
        [Document("returns", "Items can be returned within 30 days for a full refund."), Document("ship", "Shipping takes 3 days.")]
    )
    sources.register_function("order_status", order_status)
    hits = await sources.call("policies", {"query": "how long do I have to return an item?", "k": 1})
    assert hits[0].doc_id == "returns"
    assert await sources.call("order_status", {"order_id": "7"}) == {"order_id": 7, "status": "shipped", "verbose": False}
    result = await sources.call("sql:shop", {"sql": "SELECT name FROM users WHERE city = 'London'"})
    assert result.rows == [["Ada"]]
    with pytest.raises(InvalidRequest, match="order_status"):
        await sources.call("order_status", {"order_id": "seven"})
    with pytest.raises(UnsafeSql):
        await sources.call("sql:shop", {"sql": "DELETE FROM users"})
    with pytest.raises(NotFound):
        await sources.call("nothing-here", {"query": "x"})


async def test_schema_retrieval_ranks_the_relevant_table_first(sources: SourceRegistry) -> None:
    hits = await sources.retrieve("schema:shop", "total amount and status of each order", k=2)
    assert hits[0].metadata["table"] == "orders" and hits[0].text.startswith("orders(")
    assert len(hits) == 2


async def test_sql_entry_point_runs_guarded_queries(sources: SourceRegistry) -> None:
    result = await sources.sql("shop", "SELECT count(*) AS n FROM orders WHERE status = 'paid'")
    assert result.columns == ["n"] and result.rows == [[20]]
    with pytest.raises(NotFound):
        await sources.sql("nope", "SELECT 1")


def test_source_names_cannot_clash(sources: SourceRegistry) -> None:
    sources.register_function("lookup", order_status)
    with pytest.raises(Conflict):
        sources.register_function("lookup", order_status)
    with pytest.raises(Conflict):
        sources.register_function("sql:evil", order_status)
