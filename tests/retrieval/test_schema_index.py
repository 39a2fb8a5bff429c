"""The schema index: table and column entries, hybrid search, rebuilt when the database changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sloflow.retrieval.databases import Database
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.schema_index import SchemaIndex, name_words, schema_entries, schema_fingerprint
from sloflow.retrieval.sources import SourceRegistry


def test_entries_cover_every_table_and_column_with_words_types_and_values(shop_db: Path) -> None:
    tables = Database("shop", str(shop_db)).tables
    entries = schema_entries(tables)
    assert len(entries) == len(tables) + sum(len(t.columns) for t in tables)
    city = next(e for e in entries if e.metadata == {"table": "users", "column": "city"})
    assert "users.city" in city.text and "TEXT" in city.text and "London" in city.text
    assert name_words("car_makers") == "car makers" and name_words("MakeId") == "make id"


def test_a_stored_value_finds_its_column_and_table(shop_db: Path, embedder: Embedder) -> None:
    index = SchemaIndex("shop", Database("shop", str(shop_db)).tables, embedder)
    hits = index.tables("which customers live in Paris?", k=2)
    assert hits[0].metadata["table"] == "users" and "city" in str(hits[0].metadata["columns"]).split(",")
    assert len({h.metadata["table"] for h in hits}) == len(hits)  # one hit per table


async def test_the_index_is_rebuilt_when_a_table_is_added(sources: SourceRegistry, shop_db: Path) -> None:
    before = sources.schema_index("shop")
    assert sources.schema_index("shop") is before  # unchanged database: the same index
    conn = sqlite3.connect(shop_db)
    conn.executescript(
        """CREATE TABLE refunds (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id), reason TEXT);
        INSERT INTO refunds VALUES (1, 3, 'arrived broken');"""
    )
    conn.commit()
    conn.close()
    after = sources.schema_index("shop")
    assert after is not before and after.fingerprint != before.fingerprint
    assert after.fingerprint == schema_fingerprint(sources.databases.get("shop").tables)
    assert after.entries == before.entries + 4  # the table and its three columns
    hits = await sources.retrieve("schema:shop", "why was the money given back for an order that arrived broken?", k=1)
    assert hits[0].metadata["table"] == "refunds"
