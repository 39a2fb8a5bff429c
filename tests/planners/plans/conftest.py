"""Plan fixtures: hand-written sources with argument and output schemas, the NESTFUL gold data, a real registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sloflow.planners.plans.catalog import PlanSource
from sloflow.retrieval.databases import DatabaseRegistry
from sloflow.retrieval.document_index import IndexRegistry
from sloflow.retrieval.embedder import Embedder, get_embedder
from sloflow.retrieval.sources import SourceRegistry
from tests.conftest import SHARED_DATA
from tests.retrieval.conftest import make_shop_db

NESTFUL = SHARED_DATA / "plans" / "nestful"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return get_embedder()


@pytest.fixture
def shop_sources() -> list[PlanSource]:
    """Two document indexes, a database and a function; the manuals' and the function's output fields are declared."""
    search = {"type": "object", "properties": {"query": {"type": "string"}, "k": {"type": "integer"}}, "required": ["query"]}
    texts = {"type": "array", "items": {"type": "object", "properties": {"text": {"type": "string"}}}}
    status_arguments = {
        "type": "object",
        "properties": {"order_id": {"type": "integer"}, "verbose": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["order_id"],
    }
    sql = {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]}
    skus = {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}}
    return [
        PlanSource("manuals", "search product manuals", search, texts, "index"),
        PlanSource("reviews", "search customer reviews", search, None, "index"),
        PlanSource("sql:shop", "run one SELECT on the shop database", sql, None, "database"),
        PlanSource("order_status", "status of one order", status_arguments, {"type": "object", "properties": {"status": {"type": "string"}, "items": skus}}),
    ]


@pytest.fixture(scope="session")
def nestful() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The NESTFUL glaive gold plans and tool spec."""
    if not NESTFUL.is_dir():
        pytest.skip(f"{NESTFUL} is not there")
    return json.loads((NESTFUL / "glaive-data.json").read_text()), json.loads((NESTFUL / "glaive-spec.json").read_text())


def order_status(order_id: int, verbose: bool = False) -> dict:
    """Status of one order by its id."""
    return {"order_id": order_id, "status": "shipped" if order_id % 2 else "open", "items": [{"sku": f"SKU-{order_id}"}]}


@pytest.fixture
def registry(tmp_path: Path, embedder: Embedder) -> SourceRegistry:
    """A real registry: the shop database, an index of policies, and the order_status function."""
    folder = tmp_path / "dbs"
    folder.mkdir()
    sources = SourceRegistry(IndexRegistry(tmp_path / "indexes", embedder), DatabaseRegistry(tmp_path / "databases.json"))
    sources.databases.add("shop", str(make_shop_db(folder / "shop.sqlite")))
    sources.register_function("order_status", order_status)
    return sources
