"""Named scheduler combinations: a dispatch policy, a queue policy and optional re-dispatch."""

from __future__ import annotations

from dataclasses import dataclass

from sloflow.errors import ConfigError
from sloflow.scheduler.policies.dispatch import DISPATCH_POLICIES, DispatchPolicy, HexgenBalance, Rebalancer
from sloflow.scheduler.policies.queueing import QUEUE_POLICIES, QueuePolicy

DEFAULT = "least-harm+triaged-edf+redispatch"  # sloflow's default scheduler
BASELINES = ("rr+fcfs", "eft+fcfs", "hexgen+least-slack")


@dataclass(frozen=True, slots=True)
class Scheduler:
    """A policy combination: global dispatch, local queue, and optional re-dispatch."""

    dispatch: DispatchPolicy
    queue: QueuePolicy
    rebalance: Rebalancer | None = None

    @property
    def name(self) -> str:
        return f"{self.dispatch.name}+{self.queue.name}" + ("+redispatch" if self.rebalance else "")


def make_scheduler(spec: str = DEFAULT, alpha: float = 0.5) -> Scheduler:
    """A scheduler from "dispatch+queue[+redispatch]", e.g. "hexgen+least-slack" or DEFAULT."""
    parts = spec.split("+")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "redispatch"):
        raise ConfigError(f"scheduler {spec!r} must be 'dispatch+queue' or 'dispatch+queue+redispatch'")
    if parts[0] not in DISPATCH_POLICIES or parts[1] not in QUEUE_POLICIES:
        raise ConfigError(
            f"unknown policy in {spec!r}: dispatch is one of {sorted(DISPATCH_POLICIES)}, "
            f"queue one of {sorted(QUEUE_POLICIES)}"
        )
    dispatch = HexgenBalance(alpha) if parts[0] == HexgenBalance.name else DISPATCH_POLICIES[parts[0]]()
    return Scheduler(dispatch, QUEUE_POLICIES[parts[1]](), Rebalancer() if len(parts) == 3 else None)
