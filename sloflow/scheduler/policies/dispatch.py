"""Global dispatch: filter the workers that can take a call, then a policy picks one; time passed in.

Policies are small objects with one method and no I/O, shared by the live dispatcher and the
simulator. `LeastHarm` is sloflow's default; `SlackAwareFinish` is the finish estimate it builds on,
and the others are the baselines it is measured against (round-robin, least outstanding work,
earliest finish time, HEXGEN workload balance).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sloflow.errors import InvalidRequest
from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.view import PREEMPT_S, WorkerView


def eligible(call: Call, workers: Sequence[WorkerView]) -> list[WorkerView]:
    """Filter: workers not draining, serving the call's model, able to hold a call this long."""
    ok = [
        w
        for w in workers
        if not w.draining and (call.model is None or w.model is None or w.model == call.model) and w.profile.fits(call)
    ]
    if not ok:
        raise InvalidRequest(
            f"no worker can take call {call.id} ({call.kv_tokens} context tokens, model {call.model or 'any'}); "
            "add a worker with that model and a large enough context"
        )
    return ok


class DispatchPolicy(Protocol):
    """Picks the worker for a call among eligible ones."""

    name: str

    def choose(self, call: Call, workers: Sequence[WorkerView], now: float) -> WorkerView:
        """One of `workers` (never empty) for `call` at `now`."""
        ...


class RoundRobin:
    """Each worker in turn (what a plain load balancer in front of vLLM does)."""

    name = "rr"

    def __init__(self) -> None:
        self._turn = 0  # the only state a policy keeps: whose turn it is

    def choose(self, call: Call, workers: Sequence[WorkerView], now: float) -> WorkerView:
        self._turn += 1
        return workers[self._turn % len(workers)]


class LeastOutstanding:
    """The worker with the least outstanding work (seconds left of running plus queued calls)."""

    name = "low"

    def choose(self, call: Call, workers: Sequence[WorkerView], now: float) -> WorkerView:
        return min(workers, key=lambda w: w.outstanding_s(now))


def _wait_s(w: WorkerView, call: Call, ahead_s: float, now: float, concurrency: int) -> float:
    """Expected seconds until `call` starts on `w` when `ahead_s` of queued work goes before it.

    A deadline call waits for running background calls only as long as preempting one takes.
    """
    if ahead_s <= 0 and w.has_room(call):
        return 0.0
    if ahead_s <= 0 and w.has_room_preempting(call):
        return PREEMPT_S
    left = w.running_left_s(now, ahead_of=call)
    first_free = min(left) if left else 0.0
    return max(first_free, (sum(left) + ahead_s) / w.profile.throughput(concurrency))


def _served_before_s(w: WorkerView, call: Call) -> float:
    """Queued work on `w` served before `call`: all of it, except that background work waits for a deadline call."""
    if call.deadline is None:
        return w.queued_work_s
    return w.deadline_work_s()


class EarliestFinish:
    """Earliest finish time: outstanding work drained at the worker's slot throughput, plus the call.

    The baseline an independent re-implementation of HEXGEN found as good as the tuned method.
    """

    name = "eft"

    def choose(self, call: Call, workers: Sequence[WorkerView], now: float) -> WorkerView:
        def finish(w: WorkerView) -> float:
            wait = _wait_s(w, call, _served_before_s(w, call), now, w.profile.slots)
            return wait + w.profile.cost(call, w.cached_tokens(call), min(len(w.running) + 1, w.profile.slots))

        return min(workers, key=finish)


class HexgenBalance:
    """HEXGEN workload balance: argmax alpha * t_base/t_m - (1 - alpha) * W_m/W_base.

    W_m is the cumulative work assigned to m and the base is the first worker, as in the authors'
    simulator; their hand-set 0.5 load discount for the 48 GB cards is left out.
    """

    name = "hexgen"

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha

    def choose(self, call: Call, workers: Sequence[WorkerView], now: float) -> WorkerView:
        base = workers[0]
        if base.assigned_s == 0:
            return base
        t_base = base.profile.solo_s(call.prompt_tokens, call.output_tokens)

        def score(w: WorkerView) -> float:
            t_m = w.profile.solo_s(call.prompt_tokens, call.output_tokens)
            return self.alpha * t_base / t_m - (1 - self.alpha) * w.assigned_s / base.assigned_s

        return max(workers, key=score)


class SlackAwareFinish:
    """Earliest finish as the call will really be served there (the previous default).

    Compared with plain earliest finish it counts (1) only the queued work an earliest-deadline
    local queue serves before this call, (2) how many calls of this size the worker's KV cache holds at once,
    not just its slots, and (3) the prefill a warm prompt cache saves. Background calls and calls
    whose request can no longer make its deadline go to the least loaded worker instead, so they do
    not take the fast workers from calls that can still be on time.
    """

    name = "slack-eft"

    def choose(self, call: Call, workers: Sequence[WorkerView], now: float) -> WorkerView:
        if self.best_effort(call, workers, now):
            return self.least_loaded(call, workers, now)
        return min(workers, key=lambda w: self.finish_s(call, w, now))

    @staticmethod
    def best_effort(call: Call, workers: Sequence[WorkerView], now: float) -> bool:
        """A background call, or one whose request misses its deadline even alone on its best worker."""
        return call.deadline is None or (
            call.request_deadline is not None and now + min(w.solo_s(call) for w in workers) > call.request_deadline
        )

    @staticmethod
    def least_loaded(call: Call, workers: Sequence[WorkerView], now: float) -> WorkerView:
        """The worker whose outstanding work drains soonest at full slot throughput.

        A speculative prefill (`warms_cache`) goes where it would finish first behind the deadline
        work alone, counting the part of its prompt a worker already holds: the background work
        there is the prefill of the guess it replaces, being cancelled, so each new guess extends the
        last one's cache, where the deadline call will follow.
        """
        if call.warms_cache:
            return min(workers, key=lambda w: w.deadline_backlog_s(now) + w.solo_s(call))
        return min(workers, key=lambda w: w.outstanding_s(now) / w.profile.throughput(w.profile.slots))

    @staticmethod
    def finish_s(call: Call, w: WorkerView, now: float) -> float:
        """Expected seconds from `now` until `call` would finish on `w`."""
        deadline = call.deadline if call.deadline is not None else float("inf")
        ahead = sum(q.work_s for q in w.queued.values() if q.call.deadline is not None and q.call.deadline <= deadline)
        fit = min(w.profile.slots, max(w.profile.kv_capacity // max(call.kv_tokens, 1), 1))
        together = min(fit, len(w.running) + 1)
        return _wait_s(w, call, ahead, now, fit) + w.profile.cost(call, w.cached_tokens(call), together)


def added_delay_s(w: WorkerView, call: Call, now: float, own_s: float) -> float:
    """Seconds of delay that `call`, running `own_s` seconds in the batch on `w`, adds to the calls running there.

    Running calls share a worker, each slowed by `decode_slowdown` per extra call, so while the new
    call runs it stretches every running call by that factor (to first order, over the time the two
    overlap). A call that must wait for a slot or for KV cache space joins no batch now and is
    counted as adding none; nor is the delay of background calls, which have no deadline to miss.
    """
    k = len(w.running)
    if k == 0 or not w.has_room(call):
        return 0.0
    p = w.profile
    return (p.slowdown(k + 1) / p.slowdown(k) - 1.0) * sum(min(left, own_s) for left in w.running_left_s(now, ahead_of=call))


class LeastHarm(SlackAwareFinish):
    """sloflow's default: among the workers where a call still meets its deadline, the one it slows least.

    Earliest finish sends every call to where it alone ends soonest, which piles calls onto the fast
    cards even when they have time to spare; on batched workers each extra call slows every call
    already running there, so calls that are short of time later find the fast cards crowded. Here
    a call goes to the worker where it adds the least delay to running calls, among those where its
    expected finish (slack-aware, as `SlackAwareFinish`), stretched by `room` for estimate error and
    later arrivals, is within its deadline. Ties go to the worker where the call costs the least
    worker time, then to the earliest finish: workers that differ by call shape (one prefills
    faster, another decodes faster) keep each call where it is cheapest while its deadline allows,
    and leave the capacity it would waste elsewhere to later calls. A call that fits nowhere takes
    its earliest finish; background calls and calls of lost requests go to the least loaded worker.
    """

    name = "least-harm"

    def __init__(self, room: float = 1.3) -> None:
        self.room = room

    def choose(self, call: Call, workers: Sequence[WorkerView], now: float) -> WorkerView:
        if self.best_effort(call, workers, now):
            return self.least_loaded(call, workers, now)
        assert call.deadline is not None
        scored = [(self.finish_s(call, w, now), w) for w in workers]
        fits = [(f, w) for f, w in scored if now + self.room * f <= call.deadline]
        if not fits:
            return min(scored, key=lambda fw: fw[0])[1]
        return min(fits, key=lambda fw: (added_delay_s(fw[1], call, now, fw[0]), fw[1].solo_s(call), fw[0]))[1]


class Rebalancer:
    """Re-dispatch: a worker with a free slot and nothing queued takes over another worker's waiting call.

    It takes the most urgent queued deadline call that would finish sooner on it than where it
    waits, so calls stranded behind a long queue move to capacity that became free after dispatch.
    """

    def steal(self, idle: WorkerView, workers: Sequence[WorkerView], now: float) -> tuple[Call, WorkerView] | None:
        """A (call, worker it waits on) to move to `idle`, or None."""
        best: tuple[Call, WorkerView] | None = None
        best_slack = float("inf")
        for w in workers:
            if w is idle or not w.queued:
                continue
            for q in w.queued.values():
                call = q.call
                if call.deadline is None or not idle.profile.fits(call) or not idle.has_room_preempting(call):
                    continue
                if call.model is not None and idle.model is not None and idle.model != call.model:
                    continue
                here = idle.profile.cost(call, idle.cached_tokens(call), len(idle.running) + 1)
                if here >= SlackAwareFinish.finish_s(call, w, now):
                    continue
                slack = call.deadline - now - here
                if slack < best_slack:
                    best, best_slack = (call, w), slack
        return best


DISPATCH_POLICIES: dict[str, type[DispatchPolicy]] = {
    p.name: p for p in (RoundRobin, LeastOutstanding, EarliestFinish, HexgenBalance, SlackAwareFinish, LeastHarm)  # type: ignore[misc]
}
