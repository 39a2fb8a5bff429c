"""Discrete-event simulator: replays workflow requests on modelled workers with the live policy objects.

Each worker runs up to `slots` calls by processor sharing (every running call slowed by the
profile's `decode_slowdown` per extra call) within its KV-cache capacity; the dispatcher's view of
the workers is kept with the same `WorkerView` bookkeeping the live dispatcher uses, so the policies
see estimates while the simulated service times may differ from them (`noise`, and `contention`
between workers that share a host's cores and memory bandwidth). Every simulated call has a
deadline, so the preemption of background calls (live worker) is not modelled here.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sloflow.scheduler.policies.call import Call, call_budget
from sloflow.scheduler.policies.dispatch import eligible
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.queueing import next_call
from sloflow.scheduler.policies.scheduler import Scheduler
from sloflow.scheduler.policies.view import WorkerView
from sloflow.scheduler.sim.traces import RequestShape


class BudgetModel:
    """Per-call budgets from an expected workflow template, as HEXGEN's runtime computes them.

    tbar(step) is the step's mean solo latency over the cluster; the template is the steps in their
    usual order with their mean number of stages per request, so a call never sees the future of
    its own request, only what such requests usually do.
    """

    def __init__(self, trace: Sequence[RequestShape], profiles: Sequence[WorkerProfile]) -> None:
        sums: dict[str, list[float]] = {}
        for req in trace:
            n = len(req.stages)
            for i, stage in enumerate(req.stages):
                c = stage[0]
                s = sums.setdefault(c.step, [0.0, 0.0, 0.0, 0.0])  # stages, position, prompt, output
                s[0] += 1
                s[1] += i / max(n - 1, 1)
                s[2] += sum(x.prompt_tokens for x in stage) / len(stage)
                s[3] += sum(x.output_tokens for x in stage) / len(stage)
        self.order = sorted(sums, key=lambda k: sums[k][1] / sums[k][0])
        self.count = {k: v[0] / len(trace) for k, v in sums.items()}
        self.tbar = {
            k: statistics.fmean(p.solo_s(round(v[2] / v[0]), round(v[3] / v[0])) for p in profiles)
            for k, v in sums.items()
        }

    def later_stages_s(self, step: str, occurrence: int) -> list[float]:
        """tbar of the stages expected after the `occurrence`-th stage of `step` (1-based)."""
        if step not in self.tbar:
            return []
        at = self.order.index(step)
        later = [self.count[k] * self.tbar[k] for k in self.order[at + 1 :]]
        return later + [max(self.count[step] - occurrence, 0.0) * self.tbar[step]]

    def budget(self, step: str, occurrence: int, remaining_s: float) -> float:
        return call_budget(remaining_s, self.tbar.get(step, 0.0), self.later_stages_s(step, occurrence))


def standalone_s(request: RequestShape, profiles: Sequence[WorkerProfile]) -> float:
    """Latency of `request` alone on the fastest worker type, each parallel call on its own worker."""
    return sum(
        max(min(p.solo_s(c.prompt_tokens, c.output_tokens) for p in profiles) for c in stage)
        for stage in request.stages
    )


@dataclass(slots=True)
class _Worker:
    view: WorkerView
    left: dict[str, float] = field(default_factory=dict)  # true solo-seconds each running call still needs
    last: float = 0.0
    version: int = 0
    prefixes: OrderedDict[str, None] = field(default_factory=OrderedDict)  # LRU of cached prefixes
    contention: float = 0.0  # slowdown per other busy worker on its host (0: a host of its own)
    factor: float = 1.0  # the host slowdown in force since `last`


@dataclass(slots=True)
class _Request:
    shape: RequestShape
    arrival: float
    deadline: float
    stage: int = 0
    pending: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    done: float | None = None


@dataclass(frozen=True, slots=True)
class SimResult:
    """Per-request latencies and deadlines of one simulated run."""

    latencies: tuple[float, ...]
    deadlines: tuple[float, ...]
    redispatched: int

    @property
    def attainment(self) -> float:
        return sum(lat <= d for lat, d in zip(self.latencies, self.deadlines)) / len(self.latencies)

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


_ARRIVE, _DONE = 0, 1


class Simulation:
    """One run: requests with arrival times and relative deadlines, on workers, under a scheduler."""

    def __init__(
        self,
        workers: Sequence[tuple[str, WorkerProfile]],
        scheduler: Scheduler,
        budgets: BudgetModel,
        *,
        noise: float = 0.0,
        seed: int = 0,
        contention: dict[str, float] | None = None,
    ) -> None:
        """`contention` maps a worker id to how much each of its calls slows per other worker that
        has a call running: workers on one host share its cores' memory bandwidth (measured, as
        for the real benchmark's two llama.cpp processes); unlisted workers have a host of their own."""
        contention = contention or {}
        self.workers = [_Worker(WorkerView(wid, p), contention=contention.get(wid, 0.0)) for wid, p in workers]
        self.contended = any(w.contention for w in self.workers)
        self.index = {w.view.id: i for i, w in enumerate(self.workers)}
        self.views = [w.view for w in self.workers]
        self.scheduler = scheduler
        self.budgets = budgets
        self.noise = noise
        self.rng = random.Random(seed)
        self.events: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.requests: list[_Request] = []
        self.owner: dict[str, int] = {}
        self.redispatched = 0

    def _push(self, t: float, kind: int, a: int, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, a, b))

    def run(self, shapes: Sequence[RequestShape], arrivals: Sequence[float], deadlines_s: Sequence[float]) -> SimResult:
        """Simulate until every request has finished; deadlines are relative to arrival."""
        for i, (shape, at, slo) in enumerate(zip(shapes, arrivals, deadlines_s, strict=True)):
            self.requests.append(_Request(shape, at, at + slo))
            self._push(at, _ARRIVE, i)
        while self.events:
            t, _, kind, a, b = heapq.heappop(self.events)
            if kind == _ARRIVE:
                self._release(a, t)
            elif b == self.workers[a].version:
                self._complete(self.workers[a], t)
        return SimResult(
            tuple(r.done - r.arrival for r in self.requests),  # type: ignore[operator]
            tuple(r.deadline - r.arrival for r in self.requests),
            self.redispatched,
        )

    def _release(self, ri: int, now: float) -> None:
        req = self.requests[ri]
        stage = req.shape.stages[req.stage]
        step = stage[0].step
        req.seen[step] = req.seen.get(step, 0) + 1
        due = now + self.budgets.budget(step, req.seen[step], req.deadline - now)
        req.pending = len(stage)
        for j, c in enumerate(stage):
            call = Call(
                id=f"{ri}.{req.stage}.{j}",
                prompt_tokens=c.prompt_tokens,
                output_tokens=c.output_tokens,
                release=now,
                deadline=min(due, req.deadline),
                request_deadline=req.deadline,
                run_id=str(ri),
                stage=step,
                prefix_key=step if c.prefix_tokens else None,
                prefix_tokens=c.prefix_tokens,
            )
            self.owner[call.id] = ri
            view = self.scheduler.dispatch.choose(call, eligible(call, self.views), now)
            view.enqueue(call)
            self._fill(self.workers[self.index[view.id]], now)

    def _advance(self, w: _Worker, now: float) -> None:
        if w.left:
            progress = (now - w.last) / (w.view.profile.slowdown(len(w.left)) * w.factor)
            for cid in w.left:
                w.left[cid] -= progress
        w.last = now

    def _fill(self, w: _Worker, now: float) -> None:
        """Start what fits, then (re)schedule the worker's next completion."""
        self._advance(w, now)
        while True:
            call = next_call(w.view, self.scheduler.queue, now)
            if call is None or not w.view.has_room(call):
                break
            cached = w.view.cached_tokens(call)
            w.view.start(call.id, now)
            work = w.view.profile.solo_s(call.prompt_tokens, call.output_tokens, cached)
            if self.noise:
                work *= self.rng.lognormvariate(-self.noise**2 / 2, self.noise)
            w.left[call.id] = work
            if call.prefix_key is not None:
                w.prefixes[call.prefix_key] = None
                w.prefixes.move_to_end(call.prefix_key)
                while len(w.prefixes) > w.view.profile.slots:
                    w.prefixes.popitem(last=False)
                w.view.held_prefixes = set(w.prefixes)
        self._schedule(w, now)
        if self.contended:
            self._contend(now)

    def _schedule(self, w: _Worker, now: float) -> None:
        """(Re)schedule the worker's next completion; an earlier scheduled one goes stale."""
        w.version += 1
        if w.left:
            first = min(w.left.values())
            self._push(now + max(first, 0.0) * w.view.profile.slowdown(len(w.left)) * w.factor, _DONE, self.index[w.view.id], w.version)

    def _contend(self, now: float) -> None:
        """Set each worker's host slowdown from how many others are busy now, rescheduling those it changed."""
        busy = sum(1 for w in self.workers if w.left)
        for w in self.workers:
            factor = 1.0 + w.contention * (busy - (1 if w.left else 0))
            if factor != w.factor:
                self._advance(w, now)
                w.factor = factor
                self._schedule(w, now)

    def _complete(self, w: _Worker, now: float) -> None:
        self._advance(w, now)
        for cid in [cid for cid, left in w.left.items() if left <= 1e-9]:
            del w.left[cid]
            w.view.finish(cid)
            ri = self.owner.pop(cid)
            req = self.requests[ri]
            req.pending -= 1
            if req.pending == 0:
                req.stage += 1
                if req.stage == len(req.shape.stages):
                    req.done = now
                else:
                    self._release(ri, now)
        self._fill(w, now)
        if self.scheduler.rebalance is not None:
            self._steal(w, now)

    def _steal(self, w: _Worker, now: float) -> None:
        assert self.scheduler.rebalance is not None
        while not w.view.queued:
            got = self.scheduler.rebalance.steal(w.view, self.views, now)
            if got is None:
                return
            call, source = got
            source.withdraw(call.id)
            w.view.enqueue(call)
            self.redispatched += 1
            self._fill(w, now)
