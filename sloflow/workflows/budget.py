"""Deadline budgets: each stage gets its HEXGEN share of the time left (PAPERS.md section 1).

budget(stage) = (deadline - now) * t(stage) / (t(stage) + sum of t over the expected remaining
stages), where t comes from the stage's declared `Cost` and the remaining stages from the
workflow's expected path, given how often its loops have already gone round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sloflow.llm.types import Speed  # a stage's expected time is its declared Cost at a Speed


@dataclass(frozen=True)
class Cost:
    """A stage's expected cost: LLM calls of `prompt` and `output` tokens each, plus `seconds`.

    Calls are sequential within one stage invocation; the instances of a fan-out run in
    parallel, so a fan-out stage's cost is that of one instance.
    """

    calls: int = 0
    prompt: int = 0
    output: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if min(self.calls, self.prompt, self.output, self.seconds) < 0:
            raise ValueError(f"a Cost cannot be negative: {self}")

    def expected_s(self, speed: Speed) -> float:
        """Expected seconds of one invocation at `speed`."""
        return self.seconds + self.calls * speed.call_s(self.prompt, self.output)


def proportional_share(remaining_s: float, stage_s: float, rest_s: float) -> float:
    """The stage's share of `remaining_s`; all of it when nothing has a declared cost."""
    if remaining_s <= 0:
        return 0.0
    total = stage_s + rest_s
    return remaining_s if total <= 0 else remaining_s * stage_s / total


# Walks the expected path: (stage about to run, loop counts so far) -> the stages expected after it.
PathWalk = Callable[[str, Mapping[str, int]], Iterable[str]]


class BudgetPlanner:
    """Budgets for one workflow; the expected rest of the path is cached per position."""

    def __init__(self, stage_s: Mapping[str, float], walk: PathWalk) -> None:
        # Stages without a declared cost get an equal share: a zero would starve their calls.
        if not any(stage_s.values()):
            stage_s = dict.fromkeys(stage_s, 1.0)
        self._stage_s = dict(stage_s)
        self._walk = walk
        self._rest: dict[tuple[str, tuple[tuple[str, int], ...]], float] = {}

    def rest_s(self, stage: str, loops: Mapping[str, int]) -> float:
        """Expected seconds of the stages after `stage` on the expected path."""
        key = (stage, tuple(sorted(loops.items())))
        rest = self._rest.get(key)
        if rest is None:
            rest = self._rest[key] = sum(self._stage_s[s] for s in self._walk(stage, loops))
        return rest

    def budget(self, stage: str, loops: Mapping[str, int], now: float, deadline: float | None) -> float | None:
        """Seconds this stage may take, or None for background work (no deadline)."""
        if deadline is None:
            return None
        return proportional_share(deadline - now, self._stage_s[stage], self.rest_s(stage, loops))
