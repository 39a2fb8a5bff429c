"""Liveness, readiness and the list of served models."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from sloflow.api.auth import Caller

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health", operation_id="health")
async def health() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", operation_id="ready")
async def ready(request: Request) -> dict:
    """The process can serve: at least one model is loaded."""
    models = request.app.state.models
    return {"status": "ready" if models else "starting", "models": list(models)}


@router.get("/models", operation_id="list_models")
async def models(request: Request, caller: Caller) -> dict:
    """OpenAI-compatible model list."""
    now = int(time.time())
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": now, "owned_by": "sloflow"} for name in request.app.state.models],
    }
