"""A turn's speculative work and its cancel rules: retrievals on partial input and the answer's prefill.

- At most one speculative retrieval in flight: firing a new one cancels the previous.
- A revision that is not an append (`edited`) cancels all speculative work and forgets its results.
- Results are kept; at the end of input the earliest whose top-k equals the final query's is
  reused (`reusable`); any other top-k never counts.
- Prefill: once a guess looks stable (the same top-k from `stable_after` speculative retrievals in
  a row) the answer prompt's prefix is prefilled by a background call; a different stable guess
  cancels that prefill and starts its own. At the end `settle` waits for a prefill of exactly the
  final prompt's prefix (it keeps going at full speed rather than starting over) and cancels any other.
- Layout: each prompt lists the passages the last prefill also had first, in its order (`Layout`),
  so a changed guess, and the final prompt, find the worker's prompt cache holding everything up to
  the first passage that left; the prefill of a new guess only extends the last one. The final
  prompt takes the layout `replayed_layout` gives, a function of the question alone, so that
  speculation never changes the prompt, and so the answer.

Counts of what happened are kept in `counts` (run notes, output) and as `ray_sloflow_*` series.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass, field
from typing import Any

from sloflow.workflows.builtin.stream_rag.metrics import count
from sloflow.workflows.builtin.stream_rag.triggers import FixedInterval, typed

TopK = tuple[str, ...]  # the chunk ids of a retrieval's hits, in rank order


def chunk_of(hit: dict[str, Any]) -> str:
    """A hit's chunk id: what identifies a passage in a top-k and a layout."""
    return str(hit["chunk_id"])


def top_k(hits: list[dict[str, Any]]) -> TopK:
    """The identity of a retrieval's result: its chunks' ids in rank order."""
    return tuple(chunk_of(h) for h in hits)


def in_layout(hits: list[dict[str, Any]], layout: TopK = ()) -> list[dict[str, Any]]:
    """`hits` (in rank order) ordered for the prompt: those in `layout` (an earlier prompt's
    passages) first, in its order, then the rest in rank order.

    A prompt keeps an earlier one's cached prefix up to the first passage that is gone, so the
    passages both share go first, and the best ranked of the rest, likelier to stay as more words
    come, next. (Over HotpotQA dev50 typed at 2 words/s, a model of the prefill's progress put
    rank order 4 points of TTFT reduction above chunk order.)
    """
    place = {chunk_of(h): i for i, h in enumerate(hits)}
    place.update({chunk: i - len(layout) for i, chunk in enumerate(layout) if chunk in place})
    return sorted(hits, key=lambda h: place[chunk_of(h)])


@dataclass
class Result:
    """A finished speculative retrieval: the query, its hits and when it finished."""

    query: str
    hits: list[dict[str, Any]]
    at: float

    @property
    def key(self) -> TopK:
        return top_k(self.hits)


@dataclass
class Layout:
    """The order a turn's prompts list their passages in, guess after stable guess.

    A guess is stable after `stable_after` results in a row with the same top-k; each stable guess
    that brings other passages is laid out by `in_layout` after the last one.
    """

    stable_after: int = 1
    order: TopK = ()
    _streak: tuple[TopK | None, int] = (None, 0)

    def follow(self, hits: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """`hits` in their new layout if they make a stable guess that changes it, else None."""
        key = top_k(hits)
        last, n = self._streak
        n = n + 1 if key == last else 1
        self._streak = (key, n)
        if n < self.stable_after:
            return None
        arranged = in_layout(hits, self.order)
        if top_k(arranged) == self.order:
            return None
        self.order = top_k(arranged)
        return arranged


async def replayed_layout(question: str, search: Callable[[str], Awaitable[list[dict[str, Any]]]], stable_after: int = 1) -> TopK:
    """The layout a turn reaches when `question` is typed word by word under the fixed trigger.

    The answer prompt lists its passages in this order however the question arrived (typed word by
    word, pasted whole, or in other pieces), so speculation never changes the prompt or the answer;
    a turn typed word by word has prefilled exactly this layout. `search` gives a text's top-k (a
    few local retrievals: milliseconds).
    """
    layout, trigger = Layout(stable_after), FixedInterval()
    for text in typed(question)[:-1]:
        if trigger.block(text):
            layout.follow(await search(text))
    return layout.order


@dataclass
class Prefill:
    """A background call prefilling one guess's prompt prefix (its system message)."""

    system: str
    task: asyncio.Task[Any]


# (hits, question so far) -> the background prefill call, awaited in a task
StartPrefill = Callable[[list[dict[str, Any]], str], Awaitable[Any]]


@dataclass
class Speculation:
    """One turn's speculative retrievals and prefill."""

    stable_after: InitVar[int] = 1  # see `Layout`
    start_prefill: StartPrefill | None = None  # None: no speculative prefill
    prefill_system: Callable[[list[dict[str, Any]]], str] | None = None
    results: list[Result] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    inflight: asyncio.Task[Result | None] | None = None
    prefill: Prefill | None = None
    layout: Layout = field(init=False)

    def __post_init__(self, stable_after: int) -> None:
        self.layout = Layout(stable_after)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        count(what)

    def fire(self, search: Callable[[], Awaitable[Result | None]], text: str) -> None:
        """Start a speculative retrieval (cancelling the one in flight); `search` returns None for no query."""
        if self.inflight is not None and not self.inflight.done():
            self.inflight.cancel()
            self._count("speculation_cancelled")
        self._count("speculation_fired")
        self.inflight = _quiet(asyncio.ensure_future(self._run(search, text)))

    async def _run(self, search: Callable[[], Awaitable[Result | None]], text: str) -> Result | None:
        result = await search()
        if result is None:
            return None
        self.results.append(result)
        self._follow(result, text)
        return result

    def _follow(self, result: Result, text: str) -> None:
        """A stable guess that changes the layout gets its prefill, which replaces the last one's."""
        hits = self.layout.follow(result.hits)
        if hits is None or self.start_prefill is None or self.prefill_system is None:
            return
        self.cancel_prefill()
        self.prefill = Prefill(self.prefill_system(hits), _quiet(asyncio.ensure_future(self.start_prefill(hits, text))))
        self._count("prefill_started")

    def cancel_prefill(self) -> None:
        """Cancel the prefill of a guess that is no longer wanted (a finished one costs nothing more)."""
        if self.prefill is not None:
            if not self.prefill.task.done():
                self.prefill.task.cancel()
                self._count("prefill_cancelled")
            self.prefill = None

    def edited(self) -> None:
        """A revision that is not an append: cancel everything speculative and forget its results."""
        if self.inflight is not None and not self.inflight.done():
            self.inflight.cancel()
            self._count("speculation_cancelled")
        self.inflight = None
        self.cancel_prefill()
        self.results.clear()
        self.layout = Layout(self.layout.stable_after)

    async def finish_retrievals(self, wait_s: float = 0.05) -> None:
        """Let the retrieval in flight finish if it is about to (local retrieval takes milliseconds), else cancel it."""
        if self.inflight is None or self.inflight.done():
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self.inflight), wait_s)
        if not self.inflight.done():
            self.inflight.cancel()
            self._count("speculation_cancelled")

    def reusable(self, final: TopK) -> Result | None:
        """The earliest speculative result whose top-k equals the final query's, or None."""
        return next((r for r in self.results if r.key == final), None)

    async def settle(self, system: str, wait_s: float) -> bool:
        """Whether the final prompt's prefix was prefilled: a prefill of exactly it is awaited (up to `wait_s`)."""
        prefill, self.prefill = self.prefill, None
        if prefill is None:
            return False
        if prefill.system != system:
            self.prefill = prefill
            self.cancel_prefill()
            return False
        start = time.monotonic()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(prefill.task), max(wait_s, 0.0))
        hit = prefill.task.done() and not prefill.task.cancelled() and prefill.task.exception() is None
        if not prefill.task.done():
            prefill.task.cancel()  # too slow: the final call prefills the rest itself
            self._count("prefill_cancelled")
        if hit:
            self._count("prefill_hit")
        self.counts["prefill_wait_ms"] = round((time.monotonic() - start) * 1000)
        return hit

    def close(self) -> None:
        """Cancel whatever is still running (the turn is over)."""
        if self.inflight is not None and not self.inflight.done():
            self.inflight.cancel()
        self.inflight = None
        self.cancel_prefill()


def _quiet(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    """A task whose failure is read when it ends: speculative work may fail (a deadline, a withdrawn call) unheard."""
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task
