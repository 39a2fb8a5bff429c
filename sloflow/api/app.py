"""The FastAPI application: routers, auth, quotas, body limits, error mapping, and the services they use."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from sloflow.api import chat, health, tenants
from sloflow.api import keys as key_routes
from sloflow.api.auth import KeyAuth, OpenAccess
from sloflow.api.errors import install_error_handlers
from sloflow.api.limits import BodyLimits
from sloflow.api.openapi import install_openapi
from sloflow.api.quotas import Meter, MeteredClient
from sloflow.api.ui import install_ui
from sloflow.llm.client import LLMClient
from sloflow.tenancy import KeyStore

DESCRIPTION = """Agentic LLM workflows under latency SLOs.

Every `/v1` route but `health` and `ready` needs `Authorization: Bearer KEY`; a tenant sees only its
own runs, indexes, databases, sources and contexts. Errors are `{code, message, details}`.

Route groups may be gated: a `401`/`429` with code `gate_required` carries a reasoning gate in
`details.gate`; `POST /v1/gates/{id}/solve` with its hidden word returns an access token for the
`X-Sloflow-Gate-Token` header."""


GATES_OFF = "reasoning gates are off on this server: start it with SLOFLOW_GATES naming the route groups to gate, e.g. {\"chat\": {\"mode\": \"adaptive\"}}"


def create_app(
    llm: LLMClient,
    models: list[str],
    *,
    keys: KeyStore | None = None,
    open_access: bool = False,
    meter: Meter | None = None,
    runtime: Any | None = None,
    sources: Any | None = None,
    contexts: Any | None = None,
    learn_queue: Any | None = None,
    database_roots: list[str] | None = None,
    metrics_url: str | None = None,
    dispatcher: Any | None = None,
    context_tokens: int | None = None,
    profiles: list[Any] | None = None,
    gatekeeper: Any | None = None,
    max_body_bytes: int = 16 << 20,
    max_json_depth: int = 32,
) -> FastAPI:
    """An app whose LLM calls go through `llm`; runs and retrieval routes appear when given their service.

    `keys` holds the API keys and quotas; `open_access` serves every request as the local tenant's
    admin without a key (a loopback-only personal server). `models` are the names a client may
    ask for (the first is the default); `runtime` is a started `sloflow.workflows.Runtime` (its
    client should be `MeteredClient` over `meter`, so runs count against token quotas); `sources`
    a `TenantSources` (or one `SourceRegistry`, which becomes the local tenant's); `contexts` a
    `ContextStore` and `learn_queue` the started `LearnQueue` that learns them; `dispatcher` the
    scheduler's actor for the worker routes; `metrics_url` the Prometheus export that `/metrics`
    relays; `context_tokens` the models' context, the most `max_tokens` may ask for; `profiles` the
    workers' measured `WorkerProfile`s, against which a chat deadline is checked at submission;
    `gatekeeper` a `Gatekeeper` that asks keys to solve reasoning gates on the route groups its
    policies name. The caller owns the services' lifetime.
    """
    if keys is None and not open_access:
        raise ValueError("create_app needs a KeyStore, or open_access=True for a loopback-only server")
    keys = keys if keys is not None else KeyStore(":memory:")
    meter = meter if meter is not None else Meter(keys)
    app = FastAPI(title="sloflow", version="0.1.0", description=DESCRIPTION)
    app.state.llm = llm if isinstance(llm, MeteredClient) else MeteredClient(llm, meter)
    app.state.models = models
    app.state.keys = keys
    app.state.meter = meter
    app.state.auth = OpenAccess() if open_access else KeyAuth(keys)
    app.state.context_tokens = context_tokens
    app.state.profiles = list(profiles or [])
    app.add_middleware(BodyLimits, max_bytes=max_body_bytes, max_depth=max_json_depth)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(tenants.router)
    app.include_router(key_routes.router)
    install_ui(app)
    if runtime is not None:
        from sloflow.api import runs, turns

        app.state.runtime = runtime
        app.include_router(runs.router)
        app.include_router(turns.router)
    if sources is not None:
        from sloflow.api import databases, indexes
        from sloflow.api import sources as source_routes
        from sloflow.retrieval.sources import SourceRegistry
        from sloflow.retrieval.tenant_sources import TenantSources

        app.state.sources = TenantSources(sources) if isinstance(sources, SourceRegistry) else sources
        app.state.database_roots = database_roots
        app.include_router(indexes.router)
        app.include_router(databases.router)
        app.include_router(source_routes.router)
    if contexts is not None:
        from sloflow.api import contexts as context_routes

        app.state.contexts = contexts
        app.state.learn_queue = learn_queue
        app.include_router(context_routes.router)
    if dispatcher is not None:
        from sloflow.api import workers

        app.state.dispatcher = dispatcher
        app.include_router(workers.router)
    if gatekeeper is not None:
        from sloflow.api import gates

        app.state.gatekeeper = gatekeeper
        app.include_router(gates.router)
    else:
        app.state.off_routes = dict.fromkeys(("/v1/gates/", "/v1/admin/gates"), GATES_OFF)
    if metrics_url is not None:
        from sloflow.api import metrics

        app.state.metrics_url = metrics_url
        app.include_router(metrics.router)
    return app
