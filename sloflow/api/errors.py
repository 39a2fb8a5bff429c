"""Turns every error into a JSON body `{code, message, details}`; never a stack trace."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sloflow.errors import QuotaExceeded, SloflowError, Unauthorized

log = logging.getLogger(__name__)


def _body(status: int, code: str, message: str, details: dict | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"code": code, "message": message, "details": details or {}}, headers=headers)


def _headers(exc: SloflowError) -> dict[str, str] | None:
    if isinstance(exc, QuotaExceeded):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    return None


def _describe(errors: list[dict]) -> tuple[str, list[dict]]:
    fields = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        if e.get("type") == "json_invalid":
            return "the request body is not valid JSON: " + str(e.get("ctx", {}).get("error", "")), []
        fields.append({"field": ".".join(loc) or "body", "problem": e.get("msg", "invalid")})
    message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return f"invalid request: {message}", fields


def _no_route(request: Request) -> str:
    """What a request that matched no route is told: the feature that serves its path when that is off
    on this server (`app.state.off_routes`, path prefix -> what to set), else where the routes are listed."""
    path = request.url.path
    off: dict[str, str] = getattr(request.app.state, "off_routes", {})
    hint = next((why for prefix, why in off.items() if path.startswith(prefix)), None)
    return hint or f"no route matches {request.method} {path}; /docs lists the API's routes"


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping from exceptions to HTTP responses."""

    @app.exception_handler(SloflowError)
    async def _sloflow(_: Request, exc: SloflowError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return _body(exc.status_code, exc.code, exc.message, exc.details, _headers(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, fields = _describe(list(exc.errors()))
        status = 400 if not fields else 422
        return _body(status, "invalid_request", message, {"fields": fields} if fields else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":  # no route matched: say why, or where the routes are
            return _body(404, "not_found", _no_route(request))
        return _body(exc.status_code, "http_error", str(exc.detail), headers=exc.headers)  # e.g. a 405's Allow

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _body(500, "internal_error", "internal error; the server log has the details")
