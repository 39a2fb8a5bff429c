"""Retrieval fixtures: the embedder once per session, small real databases and indexes per test."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sloflow.retrieval.databases import DatabaseRegistry
from sloflow.retrieval.document_index import IndexRegistry
from sloflow.retrieval.embedder import Embedder, get_embedder
from sloflow.retrieval.sources import SourceRegistry
from tests.conftest import SHARED_DATA

SPIDER = SHARED_DATA / "text2sql" / "spider19-dev"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return get_embedder()


def make_shop_db(path: Path) -> Path:
    """A small SQLite database with users, orders and a secret table."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, city TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), total REAL, status TEXT);
        INSERT INTO users VALUES (1, 'Ada', 'ada@example.org', 'London'), (2, 'Bob', 'bob@example.org', 'Paris'),
                                 (3, 'Cy', NULL, 'Paris');
        """
    )
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", [(i, 1 + i % 3, 10.0 * i, "paid" if i % 2 else "open") for i in range(1, 41)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    folder = tmp_path / "dbs"
    folder.mkdir()
    return make_shop_db(folder / "shop.sqlite")


@pytest.fixture
def sources(tmp_path: Path, embedder: Embedder, shop_db: Path) -> SourceRegistry:
    registry = SourceRegistry(IndexRegistry(tmp_path / "indexes", embedder), DatabaseRegistry(tmp_path / "databases.json"))
    registry.databases.add("shop", str(shop_db))
    return registry
