"""Local queue policies: which waiting call a worker starts next. One sort key each, time passed in.

Whatever the policy, a call with a deadline is always served before a background call; background
calls go first-come first-served among themselves.
"""

from __future__ import annotations

from typing import Protocol

from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.view import WorkerView


class QueuePolicy(Protocol):
    """Orders the deadline calls of one worker's queue: the smallest key starts first."""

    name: str

    def key(self, call: Call, worker: WorkerView, now: float) -> tuple[float, ...]:
        """Sort key of `call` on `worker` at `now` (only called for calls with a deadline)."""
        ...


class Fcfs:
    """First come, first served (by release time)."""

    name = "fcfs"

    def key(self, call: Call, worker: WorkerView, now: float) -> tuple[float, ...]:
        return (call.release,)


class EarliestDeadline:
    """Earliest deadline first."""

    name = "edf"

    def key(self, call: Call, worker: WorkerView, now: float) -> tuple[float, ...]:
        assert call.deadline is not None
        return (call.deadline,)


class LeastSlack:
    """HEXGEN urgency: least slack first, slack = deadline - now - t_m(call)."""

    name = "least-slack"

    def key(self, call: Call, worker: WorkerView, now: float) -> tuple[float, ...]:
        assert call.deadline is not None
        return (call.deadline - now - worker.solo_s(call),)


class TriagedDeadline:
    """Earliest deadline first among calls whose request can still make it; lost requests after them.

    Goodput counts requests that finish in time, so a call that cannot make its request's deadline
    even if started now should not delay one that still can. EDF (rather than least slack) keeps the
    order the dispatcher assumes when it estimates the work queued ahead of a call.
    """

    name = "triaged-edf"

    def key(self, call: Call, worker: WorkerView, now: float) -> tuple[float, ...]:
        assert call.deadline is not None
        lost = call.request_deadline is not None and now + worker.solo_s(call) > call.request_deadline
        return (1.0 if lost else 0.0, call.deadline)


def next_call(worker: WorkerView, policy: QueuePolicy, now: float) -> Call | None:
    """The call `worker` should start next: deadline calls by `policy`, then background FCFS."""
    best: Call | None = None
    best_key: tuple[float, ...] = ()
    background: Call | None = None
    for q in worker.queued.values():
        call = q.call
        if call.deadline is None:
            if background is None or call.release < background.release:
                background = call
            continue
        k = policy.key(call, worker, now)
        if best is None or k < best_key:
            best, best_key = call, k
    return best if best is not None else background


QUEUE_POLICIES: dict[str, type[QueuePolicy]] = {
    p.name: p for p in (Fcfs, EarliestDeadline, LeastSlack, TriagedDeadline)  # type: ignore[misc]
}
