"""`/metrics`: the node's Prometheus export, where Ray publishes the `ray_sloflow_*` series."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from sloflow.errors import BackendError

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format: scheduler queues, call latency, tokens/s, SLO attainment."""
    url: str = request.app.state.metrics_url
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            resp = await client.get(url)
    except httpx.HTTPError as exc:
        raise BackendError(f"Ray's metrics export at {url} did not answer: {exc}") from None
    return PlainTextResponse(resp.text, media_type="text/plain; version=0.0.4")
