"""The FastAPI application: routers, error mapping and the backends it serves."""

from __future__ import annotations

from fastapi import FastAPI

from sloflow.api import chat, health
from sloflow.api.errors import install_error_handlers
from sloflow.llm import Backend


def create_app(backends: dict[str, Backend], default_model: str | None = None) -> FastAPI:
    """An app serving `backends` by name; the caller owns their lifetime."""
    app = FastAPI(title="sloflow", version="0.1.0")
    app.state.backends = backends
    app.state.default_model = default_model or next(iter(backends), None)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(chat.router)
    return app
