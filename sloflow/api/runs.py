"""Workflows and runs: list workflows, start runs, read them, follow their events, cancel them.

The router expects `app.state.runtime`, a started `sloflow.workflows.Runtime`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic_core import to_jsonable_python
from sse_starlette.sse import EventSourceResponse

from sloflow.api.run_schemas import RunCreate, RunOut, WorkflowList, WorkflowOut
from sloflow.errors import InvalidRequest
from sloflow.workflows.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["runs"])


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


@router.get("/workflows")
async def list_workflows(request: Request) -> WorkflowList:
    """The registered workflows with their input schemas and default SLOs."""
    return WorkflowList(workflows=[WorkflowOut.of(wf) for wf in _runtime(request).registry])


@router.post("/workflows/{name}/runs", status_code=202, response_model=RunOut)
async def create_run(
    name: str,
    body: RunCreate,
    request: Request,
    wait: Annotated[bool, Query(description="block until the run ends and answer 200")] = False,
) -> RunOut | JSONResponse:
    """Start a run; 202 with its id at once, or with `?wait=true` the finished run."""
    runtime = _runtime(request)
    record = await runtime.start(name, body.input, slo=body.slo)
    if not wait:
        return RunOut.of(record)
    finished = await runtime.wait(record.id)
    return JSONResponse(to_jsonable_python(RunOut.of(finished)), status_code=200)


@router.get("/runs/{run_id}")
async def get_run(run_id: str, request: Request) -> RunOut:
    """The run's status, timings, deadline, outcome and per-stage timings."""
    return RunOut.of(_runtime(request).get(run_id))


@router.post("/runs/{run_id}/cancel", status_code=202)
async def cancel_run(run_id: str, request: Request) -> RunOut:
    """Cancel the run: it stops before its next stage and its pending LLM calls are withdrawn."""
    return RunOut.of(await _runtime(request).cancel(run_id))


@router.get("/runs/{run_id}/events", response_model=None)
async def run_events(
    run_id: str,
    request: Request,
    after: Annotated[int | None, Query(ge=0, description="send events after this id")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """The run's events as server-sent events with ids; reconnect with `Last-Event-ID` to resume."""
    runtime = _runtime(request)
    start = after if after is not None else _event_id(last_event_id)
    runtime.get(run_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[dict[str, str]]:
        async for event in runtime.follow(run_id, start):
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
