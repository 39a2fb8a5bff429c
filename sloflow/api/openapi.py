"""The OpenAPI document as strict as the server: the error shape on every operation, the bearer
scheme, and per-workflow input schemas, so a client (or a fuzzer) generates what validation accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

# What any route may answer besides success; a route's own documented codes take precedence.
_ERRORS = {
    "400": "malformed request: the message says what to fix",
    "401": "no API key, or an unknown or revoked one",
    "403": "the key's role or plan does not allow this",
    "404": "no such object for this tenant",
    "409": "the request clashes with the current state",
    "413": "the body is larger than the server accepts",
    "422": "a field is invalid: details.fields names each",
    "429": "over a quota: Retry-After says when to retry",
    "502": "an LLM backend failed",
    "503": "a model is not available",
    "504": "the deadline passed during the work",
}
_OPEN = {"health", "ready"}  # no key needed


class ErrorBody(BaseModel):
    """Every error: a stable `code`, a `message` saying what to fix, and JSON `details`."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no run with id '0000'"])
    details: dict[str, Any] = Field(default_factory=dict)


def install_openapi(app: FastAPI) -> None:
    """Replace `app.openapi` with one that adds errors, security and workflow inputs (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        for path, item in doc.get("paths", {}).items():
            for method, op in item.items():
                responses = op.setdefault("responses", {})
                for code, description in _ERRORS.items():
                    if code == "401" and op.get("operationId") in _OPEN:
                        continue
                    existing = responses.get(code)
                    if existing is None or "content" not in existing:
                        responses[code] = {"description": description, **error}
                if op.get("operationId") in _OPEN:
                    op["security"] = []
                if op.get("operationId") == "create_run":
                    _workflow_inputs(app, op, schemas)
        _database_urls(app, schemas)
        _context_limit(app, schemas)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _workflow_inputs(app: FastAPI, op: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The run's `name` is one of the registered workflows and its `input` one of their input schemas."""
    runtime = getattr(app.state, "runtime", None)
    if runtime is None:
        return
    workflows = list(runtime.registry)
    for param in op.get("parameters", []):
        if param["name"] == "name" and param["in"] == "path" and workflows:
            param["schema"] = {"type": "string", "enum": [wf.name for wf in workflows]}
    inputs = []
    for wf in workflows:
        schema = dict(wf.input_schema())
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)  # unknown fields are refused (422)
        defs = schema.pop("$defs", {})
        for key, value in defs.items():
            schemas.setdefault(key, value)
        name = f"{wf.name}_input"
        schemas[name] = _rehome_refs(schema)
        inputs.append({"$ref": f"#/components/schemas/{name}"})
    body = schemas.get("RunCreate")
    if body is not None and inputs:
        body["properties"]["input"] = {"anyOf": inputs, "description": body["properties"]["input"].get("description", "")}
    for key in list(schemas):
        schemas[key] = _rehome_refs(schemas[key])


def _database_urls(app: FastAPI, schemas: dict[str, Any]) -> None:
    """A database URL must name a file under one of the folders databases may come from."""
    roots = getattr(app.state, "database_roots", None)
    body = schemas.get("DatabaseCreate")
    if not roots or body is None:
        return
    folders = "|".join(re.escape(str(Path(r).resolve())) for r in roots)
    url = body["properties"]["url"]
    url["pattern"] = rf"^(?:(?:sqlite|duckdb):///)?(?:{folders})/[^\x00]+$"
    url["description"] = f"a SQLite or DuckDB file under {', '.join(str(r) for r in roots)}: sqlite:////abs/path.db or the path"
    files = sorted(p for r in roots for p in Path(r).glob("*") if p.suffix in (".sqlite", ".sqlite3", ".db", ".duckdb"))
    if files:
        url["examples"] = [f"sqlite:///{files[0]}"] if files[0].suffix != ".duckdb" else [f"duckdb:///{files[0]}"]


def _context_limit(app: FastAPI, schemas: dict[str, Any]) -> None:
    """`max_tokens` below the served models' context."""
    context = getattr(app.state, "context_tokens", None)
    body = schemas.get("ChatRequest")
    if context is None or body is None:
        return
    for option in body["properties"]["max_tokens"].get("anyOf", [body["properties"]["max_tokens"]]):
        if option.get("type") == "integer":
            option["maximum"] = context - 1


def _rehome_refs(node: Any) -> Any:
    """`#/$defs/X` (pydantic's) becomes `#/components/schemas/X`."""
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" and isinstance(v, str) else _rehome_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rehome_refs(v) for v in node]
    return node
