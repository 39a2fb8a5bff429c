"""The sources registry: named indexes, SQL databases, database schemas and Python functions.

Each source has a description and a JSON schema for its arguments, so a planner can list and call
them. Source names: an index by its name, `sql:DB` for queries, `schema:DB` for the tables of a
database that best match a question, and a function by the name it was registered under.
`retrieve` and `sql` are the async entry points that workflow stages reach as `ctx.retrieve` and
`ctx.sql`; blocking work runs in a thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal, get_type_hints

from pydantic import ConfigDict, ValidationError, create_model

from sloflow.config import get_settings
from sloflow.errors import Conflict, InvalidRequest
from sloflow.retrieval.databases import DatabaseRegistry, SqlResult
from sloflow.retrieval.document_index import IndexRegistry, SearchMode
from sloflow.retrieval.index import SearchHit, Where
from sloflow.retrieval.schema_index import SchemaIndex

SourceKind = Literal["index", "database", "schema", "function"]
_STRICT = ConfigDict(extra="forbid")  # an argument a function does not take is an error, not ignored

_SEARCH_PARAMETERS = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "what to look for"},
        "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
    },
    "required": ["query"],
}
_SQL_PARAMETERS = {
    "type": "object",
    "properties": {"sql": {"type": "string", "description": "one read-only SELECT over the listed tables"}},
    "required": ["sql"],
}


@dataclass(frozen=True)
class Source:
    """What a planner sees: a name, a kind, a description, JSON schemas of the arguments and, when
    declared, of the output (so a plan may reference its fields: `$var1.items$`)."""

    name: str
    kind: SourceKind
    description: str
    parameters: dict[str, Any]
    output: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Function:
    fn: Callable[..., Any]
    description: str
    model: type
    output: dict[str, Any] | None


class SourceRegistry:
    """All sources of one process (or tenant): indexes, databases and registered functions."""

    def __init__(self, indexes: IndexRegistry, databases: DatabaseRegistry) -> None:
        self.indexes = indexes
        self.databases = databases
        self._functions: dict[str, _Function] = {}
        self._schema_indexes: dict[str, SchemaIndex] = {}
        self._lock = threading.Lock()

    def register_function(
        self, name: str, fn: Callable[..., Any], description: str | None = None, output: dict[str, Any] | None = None
    ) -> Source:
        """Expose a Python function (sync or async); its argument schema comes from its type hints.

        `output` is the JSON schema of what it returns, when known, so plans can reference fields.
        """
        if not name or name in self._functions or name in self.indexes.names() or name.startswith(("sql:", "schema:")):
            raise Conflict(f"source {name!r} already exists or uses a reserved prefix")
        hints = get_type_hints(fn, include_extras=True)  # Annotated[str, Field(pattern=...)] keeps its constraints
        fields = {
            p.name: (hints.get(p.name, Any), ... if p.default is inspect.Parameter.empty else p.default)
            for p in inspect.signature(fn).parameters.values()
        }
        doc = description or (inspect.getdoc(fn) or name).splitlines()[0]
        self._functions[name] = _Function(fn, doc, create_model(f"{name}_args", __config__=_STRICT, **fields), output)  # type: ignore[call-overload]
        return self._function_source(name)

    def _function_source(self, name: str) -> Source:
        f = self._functions[name]
        return Source(name, "function", f.description, f.model.model_json_schema(), f.output)  # type: ignore[attr-defined]

    def catalog(self) -> list[Source]:
        """Every source a planner may call."""
        out = []
        for name in self.indexes.names():
            desc = self.indexes.get(name).config.description or f"documents of index {name}"
            out.append(Source(name, "index", f"search {desc}", _SEARCH_PARAMETERS))
        for name in self.databases.names():
            tables = ", ".join(t.name for t in self.databases.get(name).tables)
            out.append(Source(f"sql:{name}", "database", f"run one read-only SELECT on database {name} (tables: {tables})", _SQL_PARAMETERS))
            out.append(Source(f"schema:{name}", "schema", f"find the tables of database {name} relevant to a question", _SEARCH_PARAMETERS))
        out.extend(self._function_source(name) for name in sorted(self._functions))
        return out

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        """Call a source by name with JSON arguments (validated against its schema)."""
        if name.startswith("sql:"):
            if not isinstance(args.get("sql"), str):
                raise InvalidRequest(f'source {name!r} needs a string argument "sql"')
            return await self.sql(name[4:], args["sql"])
        if name in self._functions:
            f = self._functions[name]
            try:
                values = dict(f.model.model_validate(args))  # type: ignore[attr-defined]
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "arguments"
                raise InvalidRequest(f"arguments of {name!r} are invalid: {where}: {first['msg']}", details={"errors": exc.errors(include_url=False)}) from None
            if inspect.iscoroutinefunction(f.fn):
                return await f.fn(**values)
            return await asyncio.to_thread(f.fn, **values)
        if not isinstance(args.get("query"), str):
            raise InvalidRequest(f'source {name!r} needs a string argument "query"')
        return await self.retrieve(name, args["query"], int(args.get("k", 5)))

    async def retrieve(self, source: str, query: str, k: int = 5, where: Where | None = None, mode: SearchMode = "hybrid") -> list[SearchHit]:
        """Top-k hits from an index, or the best-matching tables for `schema:DB` (one hit per table; `where` and `mode` apply to indexes)."""
        if source.startswith("schema:"):
            schema = await asyncio.to_thread(self.schema_index, source[len("schema:") :])
            return await asyncio.to_thread(schema.tables, query, k)
        index = await asyncio.to_thread(self.indexes.get, source)
        return await asyncio.to_thread(index.search, query, k, where, mode)

    async def sql(self, db: str, sql: str, timeout_s: float | None = None) -> SqlResult:
        """Run one guarded read-only query on a registered database (`timeout_s` may shorten its limit)."""
        database = await asyncio.to_thread(self.databases.get, db)
        return await asyncio.to_thread(database.run, sql, timeout_s)

    def schema_index(self, db: str) -> SchemaIndex:
        """The schema index of a database, rebuilt when its schema (names, types, keys, samples) changed."""
        with self._lock:
            database = self.databases.get(db)
            index = self._schema_indexes.get(db)
            if index is None or index.fingerprint != database.fingerprint:
                index = self._schema_indexes[db] = SchemaIndex(db, database.tables, self.indexes.embedder)
            return index

    def warm(self, db: str, *, index_above_tables: int) -> None:
        """Read what a question's linking needs ahead of the first question (blocking): the stored
        text values, and the schema index when the database has more than `index_above_tables`
        tables (text2sql shows smaller schemas whole)."""
        database = self.databases.get(db)
        database.text_values()
        if len(database.tables) > index_above_tables:
            self.schema_index(db)

    def forget_schema(self, db: str) -> None:
        """Drop the cached schema index of a database (after it is re-registered or removed)."""
        with self._lock:
            self._schema_indexes.pop(db, None)


@lru_cache(maxsize=1)
def default_sources() -> SourceRegistry:
    """The process-wide registry over `settings.home` (indexes/ and databases.json)."""
    home = get_settings().home
    return SourceRegistry(IndexRegistry(home / "indexes"), DatabaseRegistry(home / "databases.json"))


def register_source(name: str, fn: Callable[..., Any], description: str | None = None, output: dict[str, Any] | None = None) -> Source:
    """Register a Python function as a source of the process-wide registry (listed by `GET /v1/sources`)."""
    return default_sources().register_function(name, fn, description, output)


async def retrieve(source: str, query: str, k: int = 5, where: Where | None = None) -> list[SearchHit]:
    """Top-k hits from a named source of the process-wide registry."""
    return await default_sources().retrieve(source, query, k, where)


async def run_sql(db: str, sql: str) -> SqlResult:
    """Run one guarded read-only query on a database of the process-wide registry."""
    return await default_sources().sql(db, sql)
