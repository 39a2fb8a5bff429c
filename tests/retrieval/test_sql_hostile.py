"""Hostile statements: every one is refused, stopped by the time limit, or harmless; the file never changes."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from sloflow.errors import DeadlineExceeded, InvalidRequest, UnsafeSql
from sloflow.retrieval.databases import Database

REFUSED, TIMEOUT, HARMLESS = "refused", "timeout", "harmless"
BOMB = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"

# (statement, expected outcome); {tmp} is the folder holding the database.
HOSTILE: list[tuple[str, str]] = [
    # stacked statements
    ("SELECT * FROM users; DROP TABLE users", REFUSED),
    ("SELECT 1; SELECT 2", REFUSED),
    ("SELECT * FROM users;\n-- trailing\nDELETE FROM users", REFUSED),
    ("SELECT * FROM [users]; DELETE FROM users", REFUSED),
    ("BEGIN; SELECT 1; COMMIT", REFUSED),
    ("", REFUSED),
    (";;;", REFUSED),
    ("SELEC * FROM users", REFUSED),
    # comments hiding a second statement
    ("SELECT * FROM users /* ; */ ; DELETE FROM users", REFUSED),
    ("SELECT * FROM users -- ; DROP TABLE users", HARMLESS),
    ("SELECT 1 -- */ ; DROP TABLE users", HARMLESS),
    ("/* DROP TABLE users; */ SELECT name FROM users", HARMLESS),
    # writes dressed as queries
    ("WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x", REFUSED),
    ("WITH x AS (SELECT 1) DELETE FROM users", REFUSED),
    ("WITH x AS (SELECT 1 AS a) INSERT INTO users (name) SELECT 'eve' FROM x", REFUSED),
    ("SELECT * INTO stolen FROM users", REFUSED),
    # DML and DDL
    ("DELETE FROM users", REFUSED),
    ("UPDATE users SET name = 'x'", REFUSED),
    ("INSERT INTO users (name) VALUES ('mallory')", REFUSED),
    ("REPLACE INTO users (id, name) VALUES (1, 'x')", REFUSED),
    ("DROP TABLE users", REFUSED),
    ("CREATE TABLE evil (x)", REFUSED),
    ("CREATE TEMP VIEW v AS SELECT 1", REFUSED),
    ("ALTER TABLE users ADD COLUMN pwned TEXT", REFUSED),
    ("VACUUM", REFUSED),
    ("VACUUM INTO '{tmp}/copy.db'", REFUSED),
    ("REINDEX", REFUSED),
    ("ANALYZE", REFUSED),
    ("EXPLAIN SELECT * FROM users", REFUSED),
    # other databases and settings
    ("ATTACH DATABASE '{tmp}/evil.db' AS evil", REFUSED),
    ("ATTACH '{tmp}/evil.db' AS evil; SELECT 1", REFUSED),
    ("DETACH DATABASE main", REFUSED),
    ("SELECT * FROM evil.users", REFUSED),
    ("SELECT * FROM temp.sqlite_master", REFUSED),
    ("PRAGMA writable_schema = ON", REFUSED),
    ("PRAGMA journal_mode = DELETE", REFUSED),
    ("PRAGMA user_version = 7", REFUSED),
    ("PRAGMA table_info(users)", REFUSED),
    # files, extensions and the system
    ("SELECT load_extension('/tmp/evil.so')", REFUSED),
    ("SELECT LoAd_ExTeNsIoN('evil')", REFUSED),
    ("SELECT readfile('/etc/passwd')", REFUSED),
    ("SELECT writefile('{tmp}/x', 'data')", REFUSED),
    ("SELECT fts3_tokenizer('simple')", REFUSED),
    ("SELECT * FROM read_csv('/etc/passwd')", REFUSED),
    ("SELECT * FROM pragma_table_info('users')", REFUSED),
    ("SELECT sqlite_version()", REFUSED),
    ("SELECT * FROM sqlite_master", REFUSED),
    ("SELECT name FROM users UNION SELECT sql FROM sqlite_schema", REFUSED),
    # resource bombs
    ("SELECT randomblob(1000000000)", REFUSED),
    ("SELECT zeroblob(2000000000)", REFUSED),
    (f"{BOMB} SELECT count(*) FROM c", TIMEOUT),
    ("SELECT count(*) FROM orders a, orders b, orders c, orders d, orders e, orders f", TIMEOUT),
    (f"{BOMB} SELECT x FROM c", HARMLESS),
    ("SELECT * FROM orders LIMIT 100000000", HARMLESS),
    ("SELECT * FROM orders LIMIT (SELECT 100000000)", HARMLESS),
    # names that do not exist
    ("SELECT password FROM users", REFUSED),
    ("SELECT u.secret FROM users AS u", REFUSED),
    ("SELECT name FROM users WHERE nosuch = 1", REFUSED),
    ("SELECT * FROM accounts", REFUSED),
    # quoting tricks
    ('SELECT * FROM "users; DROP TABLE users"', REFUSED),
    ("SELECT * FROM `users` WHERE name = 'a'' ; DROP TABLE users; --'", HARMLESS),
    ('SELECT "password" FROM users', HARMLESS),
    ("SELECT name FROM users WHERE id = 1 OR 1 = 1", HARMLESS),
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(shop_db: Path) -> Database:
    return Database("shop", str(shop_db), timeout_s=0.5, max_rows=50)


def test_there_are_at_least_40_hostile_statements() -> None:
    assert len(HOSTILE) >= 40


def test_every_hostile_statement_is_refused_or_harmless_and_the_file_is_unchanged(db: Database, shop_db: Path) -> None:
    folder = shop_db.parent
    before, files_before = _digest(shop_db), sorted(p.name for p in folder.iterdir())
    wrong = []
    for template, expected in HOSTILE:
        sql = template.replace("{tmp}", str(folder))
        try:
            result = db.run(sql)
            outcome = HARMLESS
            # Harmless means: what ran was one SELECT with the LIMIT in force.
            ran = sqlglot.parse(result.sql, read="sqlite")
            assert len(ran) == 1 and isinstance(ran[0], (exp.Select, exp.SetOperation)), sql
            assert int(ran[0].args["limit"].expression.name) <= db.max_rows + 1, sql
            assert len(result.rows) <= db.max_rows
        except UnsafeSql as exc:
            outcome = REFUSED
            assert exc.message.startswith("refused (") and exc.details["rule"], sql
        except DeadlineExceeded:
            outcome = TIMEOUT
        if outcome != expected:
            wrong.append((sql, expected, outcome))
    assert not wrong
    assert _digest(shop_db) == before
    assert sorted(p.name for p in folder.iterdir()) == files_before


@pytest.mark.parametrize(
    ("sql", "rule", "words"),
    [
        ("SELECT 1; DELETE FROM users", "one_statement", "found 2"),
        ("DELETE FROM users", "read_only", "DELETE"),
        ("SELECT readfile('/etc/passwd')", "function", "readfile"),
        ("SELECT password FROM users", "unknown_column", "password"),
        ("SELECT * FROM accounts", "unknown_table", "accounts"),
        ("SELECT * INTO t FROM users", "read_only", "INTO"),
    ],
)
def test_a_refusal_names_the_rule_and_the_reason(db: Database, sql: str, rule: str, words: str) -> None:
    with pytest.raises(UnsafeSql) as caught:
        db.run(sql)
    assert caught.value.details["rule"] == rule
    assert words in caught.value.message


def test_the_read_only_connection_refuses_writes_even_if_the_guard_let_them_through(
    db: Database, shop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shop_db.parent
    before = _digest(shop_db)
    # Simulate a guard bug: the statement goes to the engine unchecked.
    monkeypatch.setattr(db, "check", lambda sql: sql)
    for sql in [
        "DELETE FROM users",
        "INSERT INTO users (name) VALUES ('x')",
        "CREATE TABLE evil (x)",
        f"ATTACH DATABASE '{folder}/evil.db' AS evil",
        "PRAGMA user_version = 7",
        "SELECT load_extension('evil')",
        f"VACUUM INTO '{folder}/copy.db'",
    ]:
        with pytest.raises((UnsafeSql, InvalidRequest)):
            db.run(sql)
    assert _digest(shop_db) == before
    assert sorted(p.name for p in folder.iterdir()) == ["shop.sqlite"]


def test_a_huge_cell_is_refused_by_its_size_not_returned(db: Database) -> None:
    started = time.monotonic()
    with pytest.raises(UnsafeSql) as caught:
        db.run("SELECT printf('%.*c', 100000000, 'x') AS big")
    assert caught.value.details["rule"] == "result_size" and "per value" in caught.value.message
    with pytest.raises(UnsafeSql) as caught:  # a computed size: built, then refused as it arrives
        db.run("SELECT printf('%.*c', (SELECT 2000 * 1000), 'x') AS big")
    assert caught.value.details["rule"] == "result_size" and "per value" in caught.value.message
    # one over the total cap is never built at all (SQLite's length limit): it comes back empty, not 100 MB
    assert db.run("SELECT printf('%.*c', (SELECT 10000 * 10000), 'x') AS big").rows == [[None]]
    assert time.monotonic() - started < 1.0


def test_many_cells_under_the_value_cap_are_refused_by_the_total(shop_db: Path) -> None:
    big = Database("shop", str(shop_db), timeout_s=5, max_rows=100)
    sql = "SELECT printf('%.*c', 900000, 'x') AS cell FROM orders"  # 40 rows of 0.9 MB: 36 MB in all
    with pytest.raises(UnsafeSql) as caught:
        big.run(sql)
    assert caught.value.details["rule"] == "result_size" and "in total" in caught.value.message
    assert len(big.run("SELECT printf('%.*c', 900000, 'x') AS cell FROM orders LIMIT 5").rows) == 5
