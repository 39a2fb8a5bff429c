"""Input to a streaming run (`stream_rag`): revisions by POST, or one WebSocket carrying input up and events down.

The run is opened with `POST /v1/workflows/stream_rag/runs`; its answer arrives as `token` events
(`GET /v1/runs/{id}/events`, or down the WebSocket), only after the final revision. A duplicate or
out-of-order revision, input after the final one, and input to a run that is not a streaming run
or has ended get a 409 that says so.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from sloflow.api.auth import Caller
from sloflow.api.params import RunId
from sloflow.errors import Conflict, InvalidRequest, SloflowError
from sloflow.workflows.builtin.stream_rag.metrics import WORKFLOW
from sloflow.workflows.builtin.stream_rag.turn import Revision, turns
from sloflow.workflows.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["runs"])


class RevisionAccepted(BaseModel):
    """A revision the run has accepted."""

    run_id: str
    revision: int
    is_final: bool
    accepted_at: float


def submit(runtime: Runtime, run_id: str, tenant: str, revision: Revision) -> RevisionAccepted:
    """Hand a revision to the run's turn, or raise the 4xx that says what is wrong."""
    record = runtime.get(run_id, tenant)  # 404 for another tenant's run, as for an unknown one
    if record.workflow != WORKFLOW:
        raise Conflict(f"run {run_id} is a {record.workflow!r} run, not a streaming run: only {WORKFLOW} runs take input")
    if record.status.finished or not runtime.is_live(run_id):
        raise Conflict(f"run {run_id} has ended ({record.status.value}); open a new run with POST /v1/workflows/{WORKFLOW}/runs")
    turns.prune(runtime.is_live)
    arrived = turns.open(run_id).submit(revision)
    return RevisionAccepted(run_id=run_id, revision=revision.revision, is_final=revision.is_final, accepted_at=arrived.at)


@router.post("/runs/{run_id}/input", status_code=202, operation_id="run_input")
async def run_input(run_id: RunId, body: Revision, request: Request, caller: Caller) -> RevisionAccepted:
    """Send a revision of a streaming run's input: the whole text so far, a growing revision number, `is_final` at the end."""
    return submit(request.app.state.runtime, run_id, caller.tenant, body)


@router.websocket("/runs/{run_id}/ws")
async def run_socket(websocket: WebSocket, run_id: str) -> None:
    """Revisions up (JSON like the POST body), the run's events down (JSON like the SSE data), until the run ends.

    Authenticate with `Authorization: Bearer KEY` on the handshake. A refused revision is answered
    with `{"kind": "error", "data": {code, message}}` and the socket stays open.
    """
    app = websocket.app
    header = websocket.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else None
    try:
        principal = app.state.auth.principal(token)
        meter = getattr(app.state, "meter", None)
        if meter is not None:
            meter.admit_request(principal.tenant)  # a socket counts as one request against the tenant's rate
        runtime: Runtime = app.state.runtime
        runtime.get(run_id, principal.tenant)
    except SloflowError as exc:
        # WebSocket close codes 4000-4999 are the application's: 4000 + the HTTP status it would have answered
        await websocket.close(code=4000 + exc.status_code, reason=exc.message[:120])
        return
    await websocket.accept()

    async def down() -> None:
        async for event in runtime.follow(run_id, 0, principal.tenant):
            data = {"id": event.id, "ts": event.ts, "kind": event.kind, "stage": event.stage, "data": event.data}
            await websocket.send_text(json.dumps(to_jsonable_python(data)))

    async def up() -> None:
        while True:
            raw = await websocket.receive_text()
            try:
                revision = Revision.model_validate_json(raw)
                submit(runtime, run_id, principal.tenant, revision)
            except ValidationError as exc:
                error = InvalidRequest(f"a revision is {{revision, text, is_final}}: {exc.errors(include_url=False)[0]['msg']}").to_dict()
                await websocket.send_text(json.dumps({"kind": "error", "data": error}))
            except SloflowError as exc:
                await websocket.send_text(json.dumps({"kind": "error", "data": exc.to_dict()}))

    sender = asyncio.ensure_future(down())
    receiver = asyncio.ensure_future(up())
    try:
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None and not isinstance(task.exception(), WebSocketDisconnect):
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in (sender, receiver):
            task.cancel()
    if sender.done() and not sender.cancelled():  # the run ended and every event was sent
        await websocket.close()
