"""SQL databases over HTTP: register by URL, list, read the schema, run guarded read-only queries.

Needs `app.state.sources` (a `TenantSources`): each tenant reaches only the databases it
registered. If `app.state.database_roots` is set (a list of folders), only files under one of them
may be registered.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sloflow.api.auth import Caller
from sloflow.api.params import NAME_PATTERN, DatabaseName
from sloflow.errors import InvalidRequest, SloflowError
from sloflow.planners.sql.linking import SHOWN_WHOLE_TABLES
from sloflow.retrieval.databases import parse_url
from sloflow.retrieval.sources import SourceRegistry
from sloflow.tenancy import Principal

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/databases", tags=["databases"])


class DatabaseCreate(BaseModel):
    """A database file to register: `sqlite:////abs/path.db`, `duckdb:////abs/x.duckdb` or a path."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    name: str = Field(pattern=NAME_PATTERN, description="3-64 letters, digits, '_', '.', '-'", examples=["shop2"])
    url: str = Field(min_length=1, max_length=4096, examples=["sqlite:////srv/data/shop.sqlite"])
    timeout_s: float = Field(5.0, gt=0, le=300, description="a query running longer is interrupted")
    max_rows: int = Field(1000, ge=1, le=100_000, description="the LIMIT every query gets at most")


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    sql: str = Field(min_length=1, max_length=100_000, description="one read-only SELECT over the registered tables")


def _sources(request: Request, caller: Principal) -> SourceRegistry:
    return request.app.state.sources.of(caller.tenant)


_DATABASE_LINKS = {
    name: {"operationId": op, "parameters": {"name": "$response.body#/name"}}
    for name, op in (("GetDatabase", "get_database"), ("QueryDatabase", "query_database"), ("RemoveDatabase", "remove_database"))
}


def _check_root(request: Request, url: str) -> None:
    roots = getattr(request.app.state, "database_roots", None)
    if roots is None:
        return
    _, path = parse_url(url)
    if not any(path.is_relative_to(Path(root).resolve()) for root in roots):
        raise InvalidRequest(f"{path} is outside the folders databases may be registered from", details={"roots": [str(r) for r in roots]})


@router.post("", status_code=201, operation_id="add_database", responses={201: {"description": "the database's schema", "links": _DATABASE_LINKS}})
def add_database(body: DatabaseCreate, request: Request, caller: Caller, background: BackgroundTasks) -> dict[str, Any]:
    """Register a database; its schema is read now, so a bad file fails here.

    After the response, what text2sql's linking reads (stored text values; the schema index of a
    schema too large to show whole) is prepared, so the first question does not wait for it.
    """
    _check_root(request, body.url)
    sources = _sources(request, caller)
    db = sources.databases.add(body.name, body.url, body.timeout_s, body.max_rows)
    sources.forget_schema(body.name)
    background.add_task(_warm, sources, body.name)
    return db.describe()


def _warm(sources: SourceRegistry, name: str) -> None:
    try:
        sources.warm(name, index_above_tables=SHOWN_WHOLE_TABLES)
    except SloflowError as exc:  # removed or changed meanwhile: the first question reads it instead
        log.info("database %s was not prepared for linking: %s", name, exc.message)


@router.get(
    "",
    operation_id="list_databases",
    responses={200: {"description": "the databases", "links": {"GetDatabase": {"operationId": "get_database", "parameters": {"name": "$response.body#/databases/0/name"}}}}},
)
def list_databases(request: Request, caller: Caller) -> dict[str, Any]:
    """Every database the caller registered, with its table names."""
    registry = _sources(request, caller).databases
    out = []
    for name in registry.names():
        db = registry.get(name)
        out.append({"name": name, "url": db.url, "engine": db.engine, "tables": [t.name for t in db.tables]})
    return {"databases": out}


@router.get("/{name}", operation_id="get_database")
def get_database(name: DatabaseName, request: Request, caller: Caller) -> dict[str, Any]:
    """Schema: tables, columns, types, keys and a few sample values."""
    return _sources(request, caller).databases.get(name).describe()


@router.delete("/{name}", status_code=204, operation_id="remove_database")
def remove_database(name: DatabaseName, request: Request, caller: Caller) -> Response:
    """Forget a database (the file is left alone)."""
    sources = _sources(request, caller)
    sources.databases.remove(name)
    sources.forget_schema(name)
    return Response(status_code=204)


@router.post("/{name}/query", operation_id="query_database")
def query(name: DatabaseName, body: QueryIn, request: Request, caller: Caller) -> dict[str, Any]:
    """Run one guarded read-only query; a refusal is a 400 saying which rule and why."""
    return _sources(request, caller).databases.get(name).run(body.sql).to_dict()
