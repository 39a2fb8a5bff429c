"""Liveness, readiness and the list of served models."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health")
async def health() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> dict:
    """The process can serve: at least one model is loaded."""
    models = request.app.state.models
    return {"status": "ready" if models else "starting", "models": list(models)}


@router.get("/models")
async def models(request: Request) -> dict:
    """OpenAI-compatible model list."""
    now = int(time.time())
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": now, "owned_by": "sloflow"} for name in request.app.state.models],
    }
