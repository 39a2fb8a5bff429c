"""SQL databases registered by URL: schema introspection and guarded, read-only, time-limited queries.

Three layers stand between a statement and the data: the sqlglot guard (sql_guard.py); a read-only
connection (SQLite `mode=ro` with `query_only`, no attachments and an authorizer that allows only
reads; DuckDB `read_only` without external access); and a time limit that interrupts the query.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from sloflow.errors import Conflict, DeadlineExceeded, InvalidRequest, NotFound, UnsafeSql
from sloflow.retrieval.names import check_name
from sloflow.retrieval.sql_guard import MAX_VALUE_BYTES, check_sql, is_forbidden_function

Engine = Literal["sqlite", "duckdb"]
SAMPLE_VALUES = 3
TEXT_VALUES_PER_COLUMN = 200  # distinct values `text_values` reads per text column
# What one query may return: rows are capped by LIMIT, bytes by these (a single printf() built a
# 100 MB cell in a second). Rows are checked as they arrive; SQLite also refuses to build any value
# over the total cap (memory), where the guard's check of sizes given as literals does not reach.
MAX_RESULT_BYTES = 8 << 20
_FETCH_BATCH = 256


@dataclass(frozen=True)
class Column:
    """A column: name, declared type, whether it is part of the primary key, a few distinct values."""

    name: str
    type: str
    primary_key: bool
    samples: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class ForeignKey:
    """`column` of this table refers to `ref_table.ref_column`."""

    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    """A table or view with its columns and foreign keys."""

    name: str
    columns: list[Column]
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    def describe(self) -> str:
        """One line a planner or an LLM prompt can use: `table(col type PK, ...) FK col -> t.c`."""
        cols = ", ".join(f"{c.name} {c.type}{' PK' if c.primary_key else ''}" for c in self.columns)
        fks = "".join(f"; {f.column} -> {f.ref_table}.{f.ref_column}" for f in self.foreign_keys)
        return f"{self.name}({cols}{fks})"


@dataclass(frozen=True)
class SqlResult:
    """Rows of a query, the SQL that actually ran (with its LIMIT) and whether the LIMIT cut rows."""

    columns: list[str]
    rows: list[list[Any]]
    sql: str
    truncated: bool
    elapsed_ms: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; blobs become hex strings."""
        rows = [[v.hex() if isinstance(v, (bytes, bytearray)) else v for v in r] for r in self.rows]
        return {**asdict(self), "rows": rows}


def quote_identifier(name: str) -> str:
    """A table or column name as SQL (SQLite, DuckDB) reads it, whatever it holds: double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def parse_url(url: str) -> tuple[Engine, Path]:
    """`sqlite:///rel.db`, `sqlite:////abs.db`, `duckdb:///x.duckdb` or a bare path (.sqlite, .db, .duckdb)."""
    for engine in ("sqlite", "duckdb"):
        for prefix in (f"{engine}:///", f"{engine}://", f"{engine}:"):
            if url.startswith(prefix):
                return engine, Path(url[len(prefix) :]).expanduser().resolve()  # type: ignore[return-value]
    if url.startswith(("postgres://", "postgresql://")):
        raise InvalidRequest("Postgres databases are not supported yet; register a SQLite or DuckDB file")
    suffix = Path(url).suffix.lower()
    if suffix in (".sqlite", ".sqlite3", ".db"):
        return "sqlite", Path(url).expanduser().resolve()
    if suffix == ".duckdb":
        return "duckdb", Path(url).expanduser().resolve()
    raise InvalidRequest(f"cannot tell the database engine from {url!r}; use sqlite:///PATH or duckdb:///PATH")


_SQLITE_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    # Second line of defence: only reads, and no function from the guard's deny list.
    if action not in _SQLITE_ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and arg2 and is_forbidden_function(arg2):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _size(value: Any) -> int:
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    return 8  # numbers, NULL, dates: small and fixed


def _too_big(why: str, sql: str) -> UnsafeSql:
    return UnsafeSql(
        f"refused (result size): {why}; select fewer or shorter values (substr(), fewer columns, a smaller LIMIT)",
        details={"rule": "result_size", "max_value_bytes": MAX_VALUE_BYTES, "max_result_bytes": MAX_RESULT_BYTES, "sql": sql},
    )


def _fetch_capped(cursor: Any, limit: int, sql: str) -> list[tuple[Any, ...]]:
    """Up to `limit` rows, fetched in batches so an oversized result stops before it is all in memory."""
    rows: list[tuple[Any, ...]] = []
    total = 0
    while len(rows) < limit:
        batch = cursor.fetchmany(min(_FETCH_BATCH, limit - len(rows)))
        if not batch:
            break
        for row in batch:
            for value in row:
                size = _size(value)
                if size > MAX_VALUE_BYTES:
                    raise _too_big(f"a value of the result has {size} bytes, over the cap of {MAX_VALUE_BYTES} per value", sql)
                total += size
        if total > MAX_RESULT_BYTES:
            raise _too_big(f"the result exceeds {MAX_RESULT_BYTES} bytes in total", sql)
        rows.extend(batch)
    return rows


def schema_fingerprint(tables: Sequence[Table]) -> str:
    """A digest of names, types, keys and sample values: equal digests index the same entries."""
    shape = [
        [t.name, [[c.name, c.type, c.primary_key, [str(v) for v in c.samples]] for c in t.columns], [list(f.__dict__.values()) for f in t.foreign_keys]]
        for t in tables
    ]
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


class Database:
    """One registered database: its schema, and `run` for guarded read-only queries."""

    def __init__(self, name: str, url: str, timeout_s: float = 5.0, max_rows: int = 1000) -> None:
        self.name = check_name(name, "database")
        self.engine, self.path = parse_url(url)
        self.url = f"{self.engine}:///{self.path}"  # canonical, absolute
        if not self.path.is_file():
            raise InvalidRequest(f"database file {self.path} does not exist")
        if timeout_s <= 0 or max_rows < 1:
            raise InvalidRequest("timeout_s must be > 0 and max_rows >= 1")
        self.timeout_s, self.max_rows = timeout_s, max_rows
        self._stamp = self._file_stamp()
        self.tables = self._introspect()
        self.columns = {t.name: {c.name: c.type for c in t.columns} for t in self.tables}
        self._text_values: dict[str, list[Any]] | None = None
        self._text_values_lock = threading.Lock()

    @functools.cached_property
    def fingerprint(self) -> str:
        """The schema's digest (see `schema_fingerprint`), computed once: the schema is read once."""
        return schema_fingerprint(self.tables)

    def _file_stamp(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size

    def changed_on_disk(self) -> bool:
        """Whether the file was written since its schema was read (a table added, values changed)."""
        try:
            return self._file_stamp() != self._stamp
        except FileNotFoundError:
            return True

    def _connect(self) -> Any:
        if self.engine == "duckdb":
            import duckdb

            config = {"enable_external_access": False, "autoload_known_extensions": False, "autoinstall_known_extensions": False}
            return duckdb.connect(str(self.path), read_only=True, config=config)
        conn = sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_RESULT_BYTES)
        return conn

    def _introspect(self) -> list[Table]:
        conn = self._connect()
        try:
            if self.engine == "duckdb":
                return self._introspect_duckdb(conn)
            return self._introspect_sqlite(conn)
        except Exception as exc:
            raise InvalidRequest(f"cannot read the schema of {self.path}: {exc}") from None
        finally:
            conn.close()

    def _samples(self, conn: Any, table: str, column: str) -> list[Any]:
        rows = conn.execute(
            f"SELECT DISTINCT {quote_identifier(column)} FROM {quote_identifier(table)} WHERE {quote_identifier(column)} IS NOT NULL LIMIT {SAMPLE_VALUES}"
        ).fetchall()
        return [r[0] if not isinstance(r[0], bytes) else r[0].hex() for r in rows]

    def _introspect_sqlite(self, conn: sqlite3.Connection) -> list[Table]:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )]  # fmt: skip
        tables = []
        for name in names:
            cols = [
                Column(col, ty or "", pk > 0, self._samples(conn, name, col))
                for _, col, ty, _, _, pk in conn.execute(f"PRAGMA table_info({quote_identifier(name)})")
            ]
            fks = [ForeignKey(r[3], r[2], r[4] or "") for r in conn.execute(f"PRAGMA foreign_key_list({quote_identifier(name)})")]
            tables.append(Table(name, cols, fks))
        return tables

    def _introspect_duckdb(self, conn: Any) -> list[Table]:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall()
        keys = conn.execute(
            "SELECT table_name, constraint_type, constraint_column_names, referenced_table, referenced_column_names "
            "FROM duckdb_constraints() WHERE schema_name = 'main' AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')"
        ).fetchall()
        pks = {(t, c) for t, kind, cols, _, _ in keys if kind == "PRIMARY KEY" for c in cols}
        by_table: dict[str, list[Column]] = {}
        for table, col, ty in rows:
            by_table.setdefault(table, []).append(Column(col, ty, (table, col) in pks, self._samples(conn, table, col)))
        fks: dict[str, list[ForeignKey]] = {}
        for table, kind, cols, ref_table, ref_cols in keys:
            if kind == "FOREIGN KEY":
                fks.setdefault(table, []).extend(ForeignKey(c, ref_table, r) for c, r in zip(cols, ref_cols))
        return [Table(t, cols, fks.get(t, [])) for t, cols in by_table.items()]

    def check(self, sql: str) -> str:
        """The SQL that would run for `sql` (guarded, LIMIT enforced), or `UnsafeSql`."""
        # One row more than is returned, so a result cut by the limit is reported as truncated.
        return check_sql(sql, self.columns, dialect=self.engine, max_rows=self.max_rows + 1)

    def text_values(self) -> dict[str, list[Any]]:
        """Distinct stored values of every text column ('table.column' -> values), read through the
        guard once: a file that changes on disk is opened as a new Database. Linking matches the
        question's words against them."""
        with self._text_values_lock:
            if self._text_values is None:
                out: dict[str, list[Any]] = {}
                for t in self.tables:
                    for c in t.columns:
                        if c.samples and isinstance(c.samples[0], str):
                            sql = f"SELECT DISTINCT {quote_identifier(c.name)} FROM {quote_identifier(t.name)} LIMIT {TEXT_VALUES_PER_COLUMN}"
                            try:
                                out[f"{t.name}.{c.name}"] = [r[0] for r in self.run(sql).rows]
                            except (DeadlineExceeded, InvalidRequest, UnsafeSql):
                                continue
                self._text_values = out
            return self._text_values

    def run(self, sql: str, timeout_s: float | None = None) -> SqlResult:
        """Guard, then run on a read-only connection within the time limit (blocking).

        `timeout_s` shortens the database's own limit for this query (a run's deadline), never lengthens it.
        """
        safe = self.check(sql)
        limit_s = self.timeout_s if timeout_s is None else max(min(timeout_s, self.timeout_s), 0.001)
        conn = self._connect()
        started = time.monotonic()
        deadline = started + limit_s
        timer = None
        try:
            if self.engine == "duckdb":
                timer = threading.Timer(limit_s, conn.interrupt)
                timer.start()
            else:
                conn.set_authorizer(_sqlite_authorizer)
                conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            cursor = conn.execute(safe)
            rows = _fetch_capped(cursor, self.max_rows + 1, safe)
            columns = [d[0] for d in cursor.description or []]
        except UnsafeSql:
            raise
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"the query ran past the {limit_s:g} s limit and was stopped; narrow it with WHERE or a smaller LIMIT",
                    details={"sql": safe},
                ) from None
            if "too big" in str(exc):  # SQLite's SQLITE_LIMIT_LENGTH
                raise _too_big(f"a value of the result would exceed {MAX_RESULT_BYTES} bytes", safe) from None
            if "not authorized" in str(exc) or "readonly" in str(exc).replace(" ", "").lower():
                raise UnsafeSql(f"refused (engine): the database refused it as not read-only: {exc}", details={"rule": "engine", "sql": safe}) from None
            raise InvalidRequest(f"the database could not run the query: {exc}", details={"sql": safe}) from None
        finally:
            if timer is not None:
                timer.cancel()
            conn.close()
        elapsed = (time.monotonic() - started) * 1000
        return SqlResult(columns, [list(r) for r in rows[: self.max_rows]], safe, len(rows) > self.max_rows, round(elapsed, 3))

    def describe(self) -> dict[str, Any]:
        """Name, URL, engine and full schema (tables, columns, types, keys, sample values)."""
        return {
            "name": self.name,
            "url": self.url,
            "engine": self.engine,
            "timeout_s": self.timeout_s,
            "max_rows": self.max_rows,
            "tables": [asdict(t) for t in self.tables],
        }


class DatabaseRegistry:
    """Databases by name, remembered in a JSON file; schemas are read when a database is opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: dict[str, Database] = {}
        self._lock = threading.Lock()

    def _entries(self) -> dict[str, dict]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def _save(self, entries: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=2))
        os.replace(tmp, self.path)

    def add(self, name: str, url: str, timeout_s: float = 5.0, max_rows: int = 1000, replace: bool = False) -> Database:
        """Register a database after checking that it opens and its schema reads."""
        with self._lock:
            entries = self._entries()
            if name in entries and not replace:
                raise Conflict(f"database {name!r} is already registered; remove it first or pass replace")
            db = Database(name, url, timeout_s, max_rows)
            entries[name] = {"url": str(db.url), "timeout_s": timeout_s, "max_rows": max_rows}
            self._save(entries)
            self._open[name] = db
            return db

    def get(self, name: str) -> Database:
        """The registered database `name`, its schema read again when the file changed."""
        with self._lock:
            if name not in self._open or self._open[name].changed_on_disk():
                entry = self._entries().get(name)
                if entry is None:
                    raise NotFound(f"database {name!r} is not registered; add it with `sloflow db add` or POST /v1/databases")
                self._open[name] = Database(name, entry["url"], entry["timeout_s"], entry["max_rows"])
            return self._open[name]

    def names(self) -> list[str]:
        """Names of every registered database."""
        return sorted(self._entries())

    def remove(self, name: str) -> None:
        """Forget a database (its file is left alone)."""
        with self._lock:
            entries = self._entries()
            if entries.pop(name, None) is None:
                raise NotFound(f"database {name!r} is not registered")
            self._save(entries)
            self._open.pop(name, None)
