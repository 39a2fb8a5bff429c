"""The parts of a workflow definition: its stages (cost, retry, timeout, fan-out), branches and loops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sloflow.errors import ConfigError
from sloflow.workflows.budget import Cost
from sloflow.workflows.state import read_field

StageFn = Callable[..., Awaitable[Mapping[str, Any] | None]]
StageRef = str | StageFn
# What a fan-out runs over: a count, the name of a list field of the state, or a function of it.
FanOut = int | str | Callable[[Any], Sequence[Any]]


@dataclass(frozen=True)
class Retry:
    """Retry a failed stage: `attempts` in all, sleeping `backoff_s * factor**n` in between."""

    attempts: int = 3
    backoff_s: float = 0.5
    factor: float = 2.0
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.factor < 1:
            raise ValueError(f"Retry needs attempts >= 1, backoff_s >= 0, factor >= 1: {self}")


@dataclass
class Stage:
    """One declared stage."""

    name: str
    fn: StageFn
    cost: Cost
    retry: Retry | None = None
    timeout_s: float | None = None
    fan_out: FanOut | None = None

    def items(self, state: Any) -> Sequence[Any]:
        """The items a fan-out stage runs over for `state`."""
        spec = self.fan_out
        if isinstance(spec, int):
            return range(spec)
        items = read_field(state, spec) if isinstance(spec, str) else spec(state)
        if not isinstance(items, Sequence) or isinstance(items, str):
            raise ConfigError(f"stage {self.name!r}: fan_out must give a list, got {type(items).__name__}")
        return items


@dataclass(frozen=True)
class Branch:
    """After `source`, `choose(state)` names the next stage, one of `options`."""

    source: str
    choose: Callable[[Any], StageRef]
    options: tuple[str, ...]
    expected: str


@dataclass(frozen=True)
class Loop:
    """After `source`, go back to `back_to` while `while_(state)`, at most `max_times` times."""

    source: str
    back_to: str
    while_: Callable[[Any], bool]
    max_times: int
    expected: int
