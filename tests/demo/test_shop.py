"""The demo database: deterministic, related tables, a few hundred rows, queryable through the guard."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sloflow.demo import build_demo_db
from sloflow.retrieval.databases import Database


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_built_twice_it_holds_the_same_rows(tmp_path: Path) -> None:
    a = build_demo_db(tmp_path / "a.sqlite")
    b = build_demo_db(tmp_path / "b.sqlite")
    assert _dump(a) == _dump(b)
    assert _dump(build_demo_db(tmp_path / "c.sqlite", seed=8)) != _dump(a)


def test_rebuilding_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    path.write_text("not a database")
    build_demo_db(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.sqlite"]


def test_related_tables_answer_a_join_through_the_guard(tmp_path: Path) -> None:
    db = Database("shop", str(build_demo_db(tmp_path / "shop.sqlite")))
    assert {t.name for t in db.tables} == {"customer", "product", "orders", "order_item"}
    rows = sum(db.run(f"SELECT count(*) FROM {t.name}").rows[0][0] for t in db.tables)
    assert 300 <= rows <= 1000
    top = db.run(
        "SELECT c.country, sum(i.quantity * p.price) AS spent FROM customer c JOIN orders o ON o.customer_id = c.id "
        "JOIN order_item i ON i.order_id = o.id JOIN product p ON p.id = i.product_id GROUP BY c.country ORDER BY spent DESC"
    )
    assert len(top.rows) >= 5 and top.rows[0][1] > top.rows[-1][1]
    fks = {(t.name, f.ref_table) for t in db.tables for f in t.foreign_keys}
    assert ("orders", "customer") in fks and ("order_item", "product") in fks


def test_registering_the_demo_twice_builds_once_and_keeps_one_entry(tmp_path: Path) -> None:
    from sloflow.demo import DEMO_DB_NAME, register_demo_db
    from sloflow.retrieval.databases import DatabaseRegistry

    registry = DatabaseRegistry(tmp_path / "databases.json")
    first = register_demo_db(registry, tmp_path)
    stamp = first.path.stat().st_mtime_ns
    second = register_demo_db(registry, tmp_path)
    assert registry.names() == [DEMO_DB_NAME] and second.path == first.path
    assert first.path.stat().st_mtime_ns == stamp
    assert second.run("SELECT count(*) FROM customer").rows == [[60]]
