"""Workflows and runs: list workflows, start runs, list and read them, follow their events, cancel them.

The router expects `app.state.runtime`, a started `sloflow.workflows.Runtime`. A tenant sees only
its own runs: another tenant's run id answers 404, as an unknown one does. If `app.state.meter` is
set, a tenant at its concurrent runs or over its LLM tokens gets 429 at submission.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic_core import to_jsonable_python
from sse_starlette.sse import EventSourceResponse

from sloflow.api.auth import Caller
from sloflow.api.params import RunId, WorkflowName
from sloflow.api.run_schemas import RunCreate, RunList, RunOut, WorkflowList, WorkflowOut
from sloflow.errors import InvalidRequest, QuotaExceeded
from sloflow.workflows.records import RunStatus
from sloflow.workflows.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["runs"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="a retry with the same key and body returns the first run instead of starting another",
    ),
]
# One server-sent event, as OpenAPI 3.1 describes a stream: `schema` is each event.
_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "resume after it with Last-Event-ID"},
        "event": {"type": "string", "description": "run_started, stage_started, stage_finished, progress, token, run_finished..."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "required": ["id", "ts", "kind", "data"],
                "properties": {
                    "id": {"type": "integer"}, "ts": {"type": "number"}, "kind": {"type": "string"},
                    "stage": {"type": ["string", "null"]}, "data": {"type": "object"},
                },
            },
        },
    },
}
_RUN_LINKS = {
    name: {"operationId": op, "parameters": {"run_id": "$response.body#/id"}}
    for name, op in (("GetRun", "get_run"), ("CancelRun", "cancel_run"), ("RunEvents", "run_events"), ("RunInput", "run_input"))
}


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


@router.get("/workflows", operation_id="list_workflows")
async def list_workflows(request: Request, caller: Caller) -> WorkflowList:
    """The registered workflows with their input schemas and default SLOs."""
    return WorkflowList(workflows=[WorkflowOut.of(wf) for wf in _runtime(request).registry])


def _check_quotas(request: Request, runtime: Runtime, tenant: str) -> None:
    meter = getattr(request.app.state, "meter", None)
    if meter is None:
        return
    limit = meter.quotas(tenant).concurrent_runs
    if runtime.active(tenant) >= limit:
        raise QuotaExceeded(
            f"tenant {tenant!r} already has {limit} runs queued or running (its quota); wait for one to finish",
            retry_after_s=1.0,
            details={"quota": "concurrent_runs", "limit": limit},
        )
    meter.check_tokens(tenant)


@router.post(
    "/workflows/{name}/runs",
    status_code=202,
    response_model=RunOut,
    operation_id="create_run",
    responses={202: {"description": "the run, queued", "links": _RUN_LINKS}, 200: {"model": RunOut, "description": "with ?wait=true: the finished run", "links": _RUN_LINKS}},
)
async def create_run(
    name: WorkflowName,
    body: RunCreate,
    request: Request,
    caller: Caller,
    wait: Annotated[bool, Query(description="block until the run ends and answer 200")] = False,
    idempotency_key: IdempotencyKey = None,
) -> RunOut | JSONResponse:
    """Start a run; 202 with its id at once, or with `?wait=true` the finished run."""
    runtime = _runtime(request)
    if idempotency_key is None or runtime.store.idempotent(caller.tenant, idempotency_key) is None:
        _check_quotas(request, runtime, caller.tenant)  # a retry of a known key costs nothing new
    record = await runtime.start(name, body.input, slo=body.slo, tenant=caller.tenant, idempotency_key=idempotency_key)
    if not wait:
        return RunOut.of(record)
    finished = await runtime.wait(record.id)
    return JSONResponse(to_jsonable_python(RunOut.of(finished)), status_code=200)


@router.get(
    "/runs",
    operation_id="list_runs",
    responses={200: {"description": "the runs", "links": {"GetRun": {"operationId": "get_run", "parameters": {"run_id": "$response.body#/runs/0/id"}}}}},
)
async def list_runs(
    request: Request,
    caller: Caller,
    status: Annotated[RunStatus | None, Query(description="only runs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RunList:
    """The caller's runs, newest first."""
    records = _runtime(request).runs(caller.tenant, limit, (status,) if status else None)
    return RunList(runs=[RunOut.of(r) for r in records])


@router.get("/runs/{run_id}", operation_id="get_run")
async def get_run(run_id: RunId, request: Request, caller: Caller) -> RunOut:
    """The run's status, timings, deadline, outcome and per-stage timings."""
    return RunOut.of(_runtime(request).get(run_id, caller.tenant))


@router.post("/runs/{run_id}/cancel", status_code=202, operation_id="cancel_run")
async def cancel_run(run_id: RunId, request: Request, caller: Caller) -> RunOut:
    """Cancel the run: it stops before its next stage and its pending LLM calls are withdrawn."""
    return RunOut.of(await _runtime(request).cancel(run_id, caller.tenant))


@router.get(
    "/runs/{run_id}/events",
    response_model=None,
    operation_id="run_events",
    responses={200: {"content": {"text/event-stream": {"schema": _EVENT}}, "description": "server-sent events, one per run event"}},
)
async def run_events(
    run_id: RunId,
    request: Request,
    caller: Caller,
    after: Annotated[int | None, Query(ge=0, le=2**53, description="send events after this id")] = None,
    last_event_id: Annotated[str | None, Header(max_length=20, description="resume after this event id")] = None,
) -> EventSourceResponse:
    """The run's events as server-sent events with ids; reconnect with `Last-Event-ID` to resume."""
    runtime = _runtime(request)
    start = after if after is not None else _event_id(last_event_id)
    runtime.get(run_id, caller.tenant)  # 404 before the stream starts

    async def stream() -> AsyncIterator[dict[str, str]]:
        async for event in runtime.follow(run_id, start, caller.tenant):
            data = {"id": event.id, "ts": event.ts, "kind": event.kind, "stage": event.stage, "data": event.data}
            yield {"id": str(event.id), "event": event.kind, "data": json.dumps(to_jsonable_python(data))}

    return EventSourceResponse(stream(), ping=15)


def _event_id(header: str | None) -> int:
    if not header:
        return 0
    try:
        return max(int(header), 0)
    except ValueError:
        raise InvalidRequest(f"Last-Event-ID must be an event id (an integer), got {header!r}") from None
