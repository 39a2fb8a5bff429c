"""The sources a planner may call: indexes, `sql:DB`, `schema:DB` and registered Python functions.

Needs `app.state.sources` (a `TenantSources`): a tenant lists only its own sources. Functions are registered from Python
(`sloflow.retrieval.sources.register_source`), not over HTTP: the API lists them with their schemas.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sloflow.api.auth import Caller
from sloflow.api.params import SourceName
from sloflow.errors import NotFound

router = APIRouter(prefix="/v1/sources", tags=["sources"])


_FIRST = {"GetSource": {"operationId": "get_source", "parameters": {"name": "$response.body#/sources/0/name"}}}


@router.get("", operation_id="list_sources", responses={200: {"description": "the sources", "links": _FIRST}})
def list_sources(request: Request, caller: Caller) -> dict[str, Any]:
    """Every source of the caller with its kind, description and argument (and, when declared, output) schema."""
    return {"sources": [s.to_dict() for s in request.app.state.sources.of(caller.tenant).catalog()]}


@router.get("/{name}", operation_id="get_source")
def get_source(name: SourceName, request: Request, caller: Caller) -> dict[str, Any]:
    """One source by name."""
    for source in request.app.state.sources.of(caller.tenant).catalog():
        if source.name == name:
            return source.to_dict()
    raise NotFound(f"source {name!r} is not registered; GET /v1/sources lists them")
