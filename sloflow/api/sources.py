"""The sources a planner may call: indexes, `sql:DB`, `schema:DB` and registered Python functions.

Needs `app.state.sources` (a `SourceRegistry`). Functions are registered from Python
(`sloflow.retrieval.sources.register_source`), not over HTTP: the API lists them with their schemas.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sloflow.errors import NotFound

router = APIRouter(prefix="/v1/sources", tags=["sources"])


@router.get("")
def list_sources(request: Request) -> dict[str, Any]:
    """Every source with its kind, description and argument (and, when declared, output) schema."""
    return {"sources": [s.to_dict() for s in request.app.state.sources.catalog()]}


@router.get("/{name}")
def get_source(name: str, request: Request) -> dict[str, Any]:
    """One source by name."""
    for source in request.app.state.sources.catalog():
        if source.name == name:
            return source.to_dict()
    raise NotFound(f"source {name!r} is not registered; GET /v1/sources lists them")
