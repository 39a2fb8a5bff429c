"""Admin: the scheduler's LLM workers. List them with their measured profile, slots, queue and
state; add one from a spec; drain one; remove one.

Needs `app.state.dispatcher`, the dispatcher actor (`sloflow.scheduler.live.dispatcher`).
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from ray.exceptions import RayTaskError

from sloflow.api.auth import Admin
from sloflow.errors import BackendError, SloflowError

router = APIRouter(prefix="/v1/admin/workers", tags=["admin"])
WORKER_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
WorkerId = Annotated[str, Path(pattern=WORKER_ID_PATTERN, description="a worker id, e.g. worker-0")]


class WorkerCreate(BaseModel):
    """A worker to start: an embedded llama.cpp model or an OpenAI-compatible server."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    id: str = Field(pattern=WORKER_ID_PATTERN, examples=["worker-2"])
    kind: Literal["embedded", "openai"] = "embedded"
    model: str = Field(min_length=1, max_length=500, description="embedded model name or .gguf path; or the served model's name")
    threads: int = Field(1, ge=1, le=256)
    slots: int = Field(1, ge=1, le=64)
    context_tokens: int = Field(2048, ge=256, le=1_048_576)
    base_url: str | None = Field(None, max_length=2000, description="for kind openai")


class WorkerOut(BaseModel):
    """A worker: its measured profile, slots, what it holds and whether it is draining."""

    id: str
    model: str | None
    profile: dict[str, Any]
    slots: int
    queued: int
    running: int
    draining: bool


def _out(raw: dict[str, Any]) -> WorkerOut:
    profile = asdict(raw["profile"]) if is_dataclass(raw["profile"]) else dict(raw["profile"])
    return WorkerOut(
        id=raw["id"], model=raw.get("model"), profile=profile, slots=int(profile.get("slots", 1)),
        queued=raw["queued"], running=raw["running"], draining=raw["draining"],
    )


async def _refresh_profiles(request: Request) -> list[dict[str, Any]]:
    """The workers now, and their profiles for the chat route's deadline check."""
    workers = await _ask(request.app.state.dispatcher.workers.remote())
    request.app.state.profiles = [w["profile"] for w in workers]
    return workers


async def _ask(ref: Any) -> Any:
    try:
        return await ref
    except RayTaskError as exc:
        if isinstance(exc.cause, SloflowError):
            raise exc.cause from None
        raise BackendError(f"the dispatcher failed: {exc.cause}") from None


@router.get("", operation_id="list_workers")
async def list_workers(request: Request, caller: Admin) -> dict[str, list[WorkerOut]]:
    """Every worker with its profile, slots, queue depth and state."""
    return {"workers": [_out(w) for w in await _ask(request.app.state.dispatcher.workers.remote())]}


@router.post("", status_code=201, operation_id="add_worker")
async def add_worker(body: WorkerCreate, request: Request, caller: Admin) -> WorkerOut:
    """Start a worker; it measures its speed first, then takes calls."""
    from sloflow.config import get_settings
    from sloflow.scheduler.live.worker import WorkerSpec

    settings = get_settings()
    spec = WorkerSpec(
        body.kind, body.model, slots=body.slots, threads=body.threads, context_tokens=body.context_tokens,
        models_dir=str(settings.home / "models"), base_url=body.base_url, num_cpus=0,
    )
    dispatcher = request.app.state.dispatcher
    await _ask(dispatcher.add_worker.remote(body.id, spec))
    found = [w for w in await _refresh_profiles(request) if w["id"] == body.id]
    return _out(found[0])


@router.post("/{worker_id}/drain", operation_id="drain_worker")
async def drain_worker(worker_id: WorkerId, request: Request, caller: Admin) -> WorkerOut:
    """Stop sending calls to the worker and wait until it has finished those it holds."""
    dispatcher = request.app.state.dispatcher
    await _ask(dispatcher.drain.remote(worker_id))  # NotFound for an unknown id
    return next(_out(w) for w in await _ask(dispatcher.workers.remote()) if w["id"] == worker_id)


@router.delete("/{worker_id}", status_code=204, operation_id="remove_worker")
async def remove_worker(worker_id: WorkerId, request: Request, caller: Admin) -> Response:
    """Drain the worker, then stop it."""
    await _ask(request.app.state.dispatcher.remove.remote(worker_id))  # NotFound for an unknown id
    await _refresh_profiles(request)
    return Response(status_code=204)
