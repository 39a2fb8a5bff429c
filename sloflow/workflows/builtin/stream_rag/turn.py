"""A streaming run's turn: the revisions of the user's input as they arrive, checked, in order.

The API (`POST /v1/runs/{id}/input`, the WebSocket) submits revisions to `turns`, the process-wide
board; the run's `listen` stage reads them. A revision carries the whole text so far, so a
client that edits (not only appends) sends the new text; its number must grow, so a duplicate or
a late out-of-order revision is refused, as is anything after the final one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sloflow.errors import Cancelled, Conflict

MAX_TEXT_CHARS = 4000
CANCEL_POLL_S = 0.25  # how soon a turn waiting for input notices its run was cancelled


class Revision(BaseModel):
    """The input so far: revision number (growing), the whole text, and whether it is final."""

    model_config = ConfigDict(extra="forbid", strict=True)

    revision: int = Field(ge=0, le=2**31, description="grows with every revision of the turn (0, 1, 2...; gaps allowed)")
    text: str = Field(max_length=MAX_TEXT_CHARS, description="the whole input so far, not a delta")
    is_final: bool = Field(False, description="the user has finished: the answer is generated now")


class TurnIdle(Cancelled):
    """A turn that received no input for its idle time ended by itself."""

    code = "turn_idle"


@dataclass
class Arrived:
    """A revision and when the server accepted it (`time.time()`)."""

    revision: Revision
    at: float


@dataclass
class Turn:
    """One run's revisions: checked on submission, read in order by the run."""

    run_id: str
    last: int | None = None
    final_at: float | None = None
    speculation: Any = None  # the run's `Speculation`, kept with its turn from `listen` to `answer`
    _queue: asyncio.Queue[Arrived] = field(default_factory=asyncio.Queue)

    def submit(self, revision: Revision) -> Arrived:
        """Accept a revision, or `Conflict` naming what is wrong with it."""
        if self.final_at is not None:
            raise Conflict(f"run {self.run_id} already received its final input (revision {self.last}); open a new run for a new turn")
        if self.last is not None and revision.revision == self.last:
            raise Conflict(f"revision {revision.revision} of run {self.run_id} was already received (duplicate); send revision {self.last + 1} or later")
        if self.last is not None and revision.revision < self.last:
            raise Conflict(
                f"revision {revision.revision} of run {self.run_id} is out of order: revision {self.last} was already received; "
                "send the whole current text with a higher revision number"
            )
        if revision.is_final and not revision.text.strip():
            raise Conflict(f"the final revision of run {self.run_id} is empty; send the question's text with is_final=true")
        arrived = Arrived(revision, time.time())
        self.last = revision.revision
        if revision.is_final:
            self.final_at = arrived.at
        self._queue.put_nowait(arrived)
        return arrived

    async def next(self, idle_s: float, cancelled: Callable[[], bool] = lambda: False) -> Arrived:
        """The next revision; `TurnIdle` when none arrives within `idle_s` seconds, `Cancelled` once `cancelled()`."""
        until = time.monotonic() + idle_s
        while True:
            left = until - time.monotonic()
            if cancelled():
                raise Cancelled(f"run {self.run_id} was cancelled while waiting for input")
            if left <= 0:
                raise TurnIdle(
                    f"run {self.run_id} received no input for {idle_s:g} s and ended; open a new run "
                    "(or raise idle_s) and send revisions more often"
                )
            try:
                return await asyncio.wait_for(self._queue.get(), min(left, CANCEL_POLL_S))
            except TimeoutError:
                continue


class TurnBoard:
    """The turns of this process's live streaming runs, by run id."""

    def __init__(self) -> None:
        self._turns: dict[str, Turn] = {}

    def open(self, run_id: str) -> Turn:
        """The run's turn, made on first use (input may arrive before the run's first stage)."""
        turn = self._turns.get(run_id)
        if turn is None:
            turn = self._turns[run_id] = Turn(run_id)
        return turn

    def close(self, run_id: str) -> None:
        """Forget a run's turn (its run has ended)."""
        self._turns.pop(run_id, None)

    def prune(self, is_live: Callable[[str], bool]) -> None:
        """Forget the turns of runs that ended without closing theirs (failed or cancelled mid-way)."""
        for run_id in [r for r in self._turns if not is_live(r)]:
            self._turns.pop(run_id, None)


turns = TurnBoard()  # the process-wide board the API and the workflow share
