"""The FastAPI application: routers, error mapping, and the services they use."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from sloflow.api import chat, health
from sloflow.api.errors import install_error_handlers
from sloflow.llm.client import LLMClient


def create_app(
    llm: LLMClient,
    models: list[str],
    *,
    runtime: Any | None = None,
    sources: Any | None = None,
    database_roots: list[str] | None = None,
    metrics_url: str | None = None,
) -> FastAPI:
    """An app whose LLM calls go through `llm`; runs and retrieval routes appear when given their service.

    `models` are the names a client may ask for (the first is the default); `runtime` is a
    started `sloflow.workflows.Runtime`; `sources` a `sloflow.retrieval.sources.SourceRegistry`;
    `metrics_url` the Prometheus export that `/metrics` relays.
    The caller owns the services' lifetime.
    """
    app = FastAPI(title="sloflow", version="0.1.0")
    app.state.llm = llm
    app.state.models = models
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(chat.router)
    if runtime is not None:
        from sloflow.api import runs

        app.state.runtime = runtime
        app.include_router(runs.router)
    if sources is not None:
        from sloflow.api import databases, indexes
        from sloflow.api import sources as source_routes

        app.state.sources = sources
        app.state.database_roots = database_roots
        app.include_router(indexes.router)
        app.include_router(databases.router)
        app.include_router(source_routes.router)
    if metrics_url is not None:
        from sloflow.api import metrics

        app.state.metrics_url = metrics_url
        app.include_router(metrics.router)
    return app
