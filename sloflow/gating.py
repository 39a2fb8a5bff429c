"""Gate policies: when a route group asks a key to solve a reasoning gate, and how hard a one.

Pure: the request rate, the scheduler's load and the key's recent wrong answers are passed in, so
the policy is one small object with its test. `sloflow.api.gatekeeper` feeds it live figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sloflow.planners.gates.puzzle import MAX_DIFFICULTY

GateMode = Literal["off", "always", "adaptive"]
GateReason = Literal["always", "rate", "load"]
UNGATED_GROUPS = frozenset({"gates", "health", "ready"})  # a gate is solved, and health read, without one


class GatePolicy(BaseModel):
    """One route group's gate policy (settings: `SLOFLOW_GATES='{"chat": {"mode": "adaptive"}}'`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: GateMode = Field("off", description="off, always (every request needs a token), or adaptive (past a threshold)")
    rate_per_s: float = Field(2.0, gt=0, description="adaptive: a key's admitted requests per second (over window_s) that require a gate")
    load_s: float = Field(30.0, gt=0, description="adaptive: seconds of queued deadline work per worker that require a gate")
    window_s: float = Field(10.0, gt=0, le=3600, description="the window a key's request rate and wrong answers are counted over")
    base_difficulty: int = Field(1, ge=1, le=MAX_DIFFICULTY, description="the difficulty at the threshold; each doubling past it adds one")
    gate_ttl_s: float = Field(600.0, gt=0, le=86400, description="how long an issued gate may be answered")
    token_ttl_s: float = Field(60.0, gt=0, le=86400, description="how long an access token lives")
    token_uses: int = Field(1, ge=1, le=10_000, description="requests one access token admits")


@dataclass(frozen=True)
class GateDemand:
    """A gate is required: why (which decides 401 or 429) and how hard."""

    reason: GateReason
    difficulty: int


def doublings(value: float, threshold: float) -> int:
    """How many times `value` has doubled past `threshold` (0 at the threshold, -1 below it)."""
    return -1 if value < threshold else int(math.floor(math.log2(value / threshold)))


def demand(policy: GatePolicy, rate_per_s: float, load_s: float, wrong_answers: int) -> GateDemand | None:
    """The gate a request must pass, or None: rate and load over their thresholds raise the
    difficulty by one per doubling, and each recent wrong answer by one more."""
    if policy.mode == "off":
        return None
    rate_steps, load_steps = doublings(rate_per_s, policy.rate_per_s), doublings(load_s, policy.load_s)
    if policy.mode == "adaptive" and rate_steps < 0 and load_steps < 0:
        return None
    reason: GateReason = "rate" if rate_steps >= 0 else "load" if load_steps >= 0 else "always"
    difficulty = policy.base_difficulty + max(rate_steps, 0) + max(load_steps, 0) + wrong_answers
    return GateDemand(reason, min(difficulty, MAX_DIFFICULTY))


def route_group(path: str) -> str:
    """The group a path's policy is looked up by: the first segment after /v1 (`/v1/runs/x` -> `runs`)."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "v1":
        parts = parts[1:]
    return parts[0] if parts else ""
