"""What the run store keeps: a run's record and its ordered events."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    """Where a run is in its life."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the run has ended, one way or another."""
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)


@dataclass
class Event:
    """One entry of a run's event log; `id` counts from 1 within the run."""

    id: int
    run_id: str
    ts: float
    # run_started | run_resumed | stage_started | stage_finished | stage_retry | stage_failed |
    # progress | token | cancel_requested | run_finished
    kind: str
    stage: str | None
    data: dict[str, Any]


@dataclass
class RunRecord:
    """A run: its workflow, input, status, timing, deadline, outcome and per-stage timings."""

    id: str
    workflow: str
    status: RunStatus
    input: Any
    created_at: float
    slo_s: float | None = None
    deadline: float | None = None  # absolute time.time() seconds; None for background runs
    tenant: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    deadline_met: bool | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)  # one per finished stage invocation


def error_dict(exc: BaseException) -> dict[str, Any]:
    """An error as runs and events keep it: `{code, message}`, and `details` when it has any (e.g. `retry_after_s`)."""
    code = getattr(exc, "code", None) or type(exc).__name__
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    details = getattr(exc, "details", None)
    return {"code": code, "message": message, **({"details": details} if details else {})}
