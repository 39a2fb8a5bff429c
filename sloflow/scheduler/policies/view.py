"""What the dispatcher knows about one worker: its profile, queued and running calls, held prefixes.

The live dispatcher and the simulator keep these views with the same four methods (enqueue,
start, finish, withdraw), so the policies read the same estimates in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import takewhile

from sloflow.llm.types import PREFIX_BLOCK_TOKENS
from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.profile import WorkerProfile

# What stopping a running background generation costs the deadline call that preempts it: the
# worker stops llama.cpp at its next token or inside its prompt evaluation (see the live worker).
PREEMPT_S = 0.05


@dataclass(slots=True)
class Queued:
    """A call waiting on a worker, with its expected solo seconds there."""

    call: Call
    work_s: float


@dataclass(slots=True)
class Running:
    """A call in flight on a worker and when it is expected to end."""

    call: Call
    expected_end: float


@dataclass(slots=True)
class WorkerView:
    """The dispatcher's picture of one worker (estimates, updated as calls start and finish)."""

    id: str
    profile: WorkerProfile
    model: str | None = None
    draining: bool = False
    queued: dict[str, Queued] = field(default_factory=dict)
    running: dict[str, Running] = field(default_factory=dict)
    held_prefixes: set[str] = field(default_factory=set)  # keys of held prompt prefixes and of their blocks
    kv_used: int = 0
    queued_work_s: float = 0.0
    assigned_s: float = 0.0  # cumulative work ever assigned (HEXGEN's W_m); never decremented

    def cached_tokens(self, call: Call) -> int:
        """Prompt tokens of `call` this worker still holds in its prompt cache: its whole shared
        prefix, or as many of the prefix's leading blocks as the worker holds."""
        if call.prefix_key is None:
            return 0
        if call.prefix_key in self.held_prefixes:
            return call.prefix_tokens
        held = sum(1 for _ in takewhile(self.held_prefixes.__contains__, call.prefix_blocks))
        return min(call.prefix_tokens, held * PREFIX_BLOCK_TOKENS)

    def solo_s(self, call: Call) -> float:
        """Expected seconds of `call` alone on this worker, counting its cached prefix."""
        return self.profile.solo_s(call.prompt_tokens, call.output_tokens, self.cached_tokens(call))

    def has_room(self, call: Call) -> bool:
        """Whether `call` could start right now (a free slot and enough free KV cache)."""
        return len(self.running) < self.profile.slots and self.kv_used + call.kv_tokens <= self.profile.kv_capacity

    def has_room_preempting(self, call: Call) -> bool:
        """Whether `call` could start after stopping running background calls (a deadline call preempts them)."""
        if call.deadline is None:
            return self.has_room(call)
        kept = [r.call for r in self.running.values() if r.call.deadline is not None]
        return len(kept) < self.profile.slots and sum(c.kv_tokens for c in kept) + call.kv_tokens <= self.profile.kv_capacity

    def running_left_s(self, now: float, ahead_of: Call | None = None) -> list[float]:
        """Seconds each running call still needs (at least a millisecond: estimates can run over).

        With `ahead_of` a deadline call, only the running deadline calls: background ones yield to it.
        """
        preempting = ahead_of is not None and ahead_of.deadline is not None
        return [max(r.expected_end - now, 1e-3) for r in self.running.values() if not (preempting and r.call.deadline is None)]

    def deadline_backlog_s(self, now: float) -> float:
        """Seconds of deadline work here, running and queued: all a call waits behind when background work yields to it."""
        running = sum(max(r.expected_end - now, 0.0) for r in self.running.values() if r.call.deadline is not None)
        return running + self.deadline_work_s()

    def deadline_work_s(self) -> float:
        """Queued work of deadline calls, in seconds: what a deadline call waits behind (background work waits for it)."""
        return sum(q.work_s for q in self.queued.values() if q.call.deadline is not None)

    def outstanding_s(self, now: float) -> float:
        """Work still to do here: what running calls have left plus all queued work, in seconds."""
        return sum(self.running_left_s(now)) + self.queued_work_s

    def enqueue(self, call: Call) -> None:
        work = self.solo_s(call)
        self.queued[call.id] = Queued(call, work)
        self.queued_work_s += work
        self.assigned_s += work

    def withdraw(self, call_id: str) -> Call:
        """Take a queued call back (to re-dispatch it elsewhere)."""
        q = self.queued.pop(call_id)
        self.queued_work_s = max(self.queued_work_s - q.work_s, 0.0) if self.queued else 0.0
        return q.call

    def start(self, call_id: str, now: float) -> None:
        call = self.withdraw(call_id)
        cost = self.profile.cost(call, self.cached_tokens(call), len(self.running) + 1)
        self.running[call_id] = Running(call, now + cost)
        self.kv_used += call.kv_tokens

    def finish(self, call_id: str) -> Call:
        r = self.running.pop(call_id)
        self.kv_used -= r.call.kv_tokens
        return r.call
