"""The `stream_rag` workflow: a question typed over time, answered as soon as it is final.

    listen -> retrieve -> answer

`listen` reads the turn's revisions until the final one (or `TurnIdle`); meanwhile the trigger
policy fires speculative retrievals on the text so far and a stable guess's answer prompt is
prefilled on a worker as a background call (`speculation`). `retrieve` forms the final query
(the final text) and searches; a speculative result is reused only if its top-k is identical.
The answer prompt lists the passages in the order typing the question word by word would have
found them (`replayed_layout`), whatever way the input came: the order a speculative prefill
built, so it is in the cache, and one order per question, so speculation never changes the answer.
`answer` waits for a prefill of exactly this prompt's prefix if one is still running, then
streams the answer: its `token` events are the first the client hears of any result. With
`speculate=false` the run only waits for the final input (the baseline).

The SLO counts from the run's opening, so it must cover the typing too (default 300 s); the
output's `ttft_s` is the time from the final input to the first answer token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from sloflow.errors import DeadlineExceeded, NotFound
from sloflow.llm.types import GenerateRequest
from sloflow.workflows.budget import Cost
from sloflow.workflows.builtin.stream_rag.metrics import WORKFLOW, count, first_token
from sloflow.workflows.builtin.stream_rag.prompts import answer_messages
from sloflow.workflows.builtin.stream_rag.speculation import Result, Speculation, in_layout, replayed_layout, top_k
from sloflow.workflows.builtin.stream_rag.triggers import FixedInterval, query_messages, read_query
from sloflow.workflows.builtin.stream_rag.turn import turns
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.registry import register

QUERY_TOKENS = 24  # a model-triggered decision: NO_QUERY or one short query
PREFILL_WAIT_S = 30.0  # at most this long for a running prefill of the final prefix (less than a cold prefill of any sane prompt)


class StreamRagState(BaseModel):
    """Input (index, options) and what the stages fill in."""

    index: str = Field(min_length=1, max_length=128, description="the index searched (POST /v1/indexes)")
    k: int = Field(4, ge=1, le=20, description="passages retrieved")
    trigger: Literal["fixed", "model"] = Field("fixed", description="fixed: every few words; model: the LLM decides NO_QUERY or a new query")
    speculate: bool = Field(True, description="retrieve and prefill on partial input; false waits for the final input (the baseline)")
    prefill: bool = Field(True, description="prefill the answer prompt of a stable speculative guess as background work")
    stable_after: int = Field(1, ge=1, le=10, description="speculative retrievals in a row with the same top-k before a guess is prefilled")
    idle_s: float = Field(30.0, gt=0, le=3600, description="a turn with no input for this long ends (cancelled, code turn_idle)")
    max_tokens: int = Field(48, ge=1, le=1024, description="answer tokens, at most")

    question: str = ""
    revisions: int = 0
    final_at: float | None = None
    retrieved: list[dict[str, Any]] = Field(default_factory=list, description="the passages the answer used")
    layout: list[str] = Field(default_factory=list, description="the order the answer prompt lists passages in (chunk ids)")
    reused: bool = False
    prefill_hit: bool = False
    answer: str = ""
    ttft_s: float | None = Field(None, description="seconds from the final input to the first answer token")
    speculation: dict[str, int] = Field(default_factory=dict, description="speculative work: fired, cancelled, reused, prefills")
    notes: list[str] = Field(default_factory=list)


stream_rag = Workflow(
    WORKFLOW,
    state=StreamRagState,
    slo=300.0,
    description="a question typed over time (POST /v1/runs/{id}/input) -> speculative retrieval and prefill on partial input -> a streamed answer once final",
)


@stream_rag.admit
def _index_exists(s: StreamRagState, tools: Mapping[str, Any]) -> None:
    """A turn on an index the tenant does not have is refused at submission (404)."""
    catalog = tools.get("catalog")
    if catalog is not None and s.index not in {c.name for c in catalog() if c.kind == "index"}:
        raise NotFound(f"index {s.index!r} is not registered; GET /v1/indexes lists them, POST /v1/indexes makes one")


def _speculation(s: StreamRagState, ctx: Any) -> Speculation:
    """The turn's speculative work: retrievals, and prefills through background calls of `ctx.llm`."""

    async def start_prefill(hits: list[dict[str, Any]], question: str) -> Any:
        return await ctx.llm.prefill(GenerateRequest(messages=answer_messages(hits, question), temperature=0.0))

    return Speculation(
        stable_after=s.stable_after,
        start_prefill=start_prefill if s.prefill else None,
        prefill_system=lambda hits: answer_messages(hits, "")[0].content,
    )


@stream_rag.stage(cost=Cost(seconds=0.01))
async def listen(s: StreamRagState, ctx: Any) -> dict[str, Any]:
    """Read revisions until the final one, firing speculative retrievals (and prefills) on the way."""
    turn = turns.open(ctx.run_id)
    spec = turn.speculation = _speculation(s, ctx)
    trigger = FixedInterval()
    previous: list[str | None] = [None]  # the model-triggered variant's last query
    text, n, edits = "", 0, 0

    def search_for(typed: str) -> Any:
        async def search() -> Result | None:
            query: str | None = typed
            if s.trigger == "model":
                request = GenerateRequest(messages=query_messages(typed, previous[0]), max_tokens=QUERY_TOKENS, temperature=0.0)
                query = read_query((await ctx.llm.generate(request, background=True)).text)
                if query is None:
                    return None
                previous[0] = query
            hits = await ctx.retrieve(s.index, query, s.k)
            return Result(query, [h.to_dict() for h in hits], time.time())

        return search

    try:
        while True:
            arrived = await turn.next(s.idle_s, lambda: ctx.cancelled)
            revision = arrived.revision
            n += 1
            if not revision.text.startswith(text):  # an edit, not an append: nothing guessed so far holds
                edits += 1
                spec.edited()
                trigger.reset()
                previous[0] = None
            text = revision.text
            if revision.is_final:
                ctx.emit("input final", revisions=n)  # no speculative result is ever sent: only the answer's tokens follow
                break
            if s.speculate and trigger.block(text):
                spec.fire(search_for(text), text)
        await spec.finish_retrievals()
    except BaseException:  # idle, cancelled, shut down: no speculative work outlives the turn
        spec.close()
        raise
    notes = list(s.notes)
    if edits:
        notes.append(f"listen: {edits} revision(s) edited the text (not an append); the speculative work before each was cancelled")
    return {"question": text.strip(), "revisions": n, "final_at": arrived.at, "notes": notes}


@stream_rag.stage(cost=Cost(seconds=0.05))
async def retrieve(s: StreamRagState, ctx: Any) -> dict[str, Any]:
    """The final query's top-k (a speculative result is reused only when its top-k is identical) and its layout."""
    turn = turns.open(ctx.run_id)
    spec: Speculation | None = turn.speculation
    known = {r.query: r.hits for r in spec.results} if spec is not None else {}

    async def search(text: str) -> list[dict[str, Any]]:
        return [h.to_dict() for h in await ctx.retrieve(s.index, text, s.k)]

    async def replayed(text: str) -> list[dict[str, Any]]:
        return known[text] if text in known else await search(text)

    try:
        hits = await search(s.question)
        start = time.monotonic()
        layout = await replayed_layout(s.question, replayed, s.stable_after)
        replay_ms = (time.monotonic() - start) * 1000
    except BaseException:
        if spec is not None:
            spec.close()
        raise
    notes = list(s.notes)
    found = spec.reusable(top_k(hits)) if spec is not None else None
    if found is not None:
        count("retrieval_reused")
        spec.counts["retrieval_reused"] = 1  # type: ignore[union-attr]
        notes.append(f"retrieve: reused the speculative result of {found.query!r} (its top-{s.k} equals the final query's)")
        hits = found.hits
    elif spec is not None and spec.results:
        count("retrieval_fresh")
        notes.append(f"retrieve: no speculative top-{s.k} ({len(spec.results)}) equalled the final query's; the fresh result is used")
    else:
        count("retrieval_fresh")
    notes.append(f"retrieve: the passages are laid out as typing the question word by word finds them ({replay_ms:.0f} ms)")
    return {"retrieved": hits, "layout": list(layout), "reused": found is not None, "notes": notes}


@stream_rag.stage(cost=Cost(calls=1, prompt=700, output=48))
async def answer(s: StreamRagState, ctx: Any) -> dict[str, Any]:
    """Stream the answer; a running prefill of exactly this prompt's prefix is finished first, not redone."""
    turn = turns.open(ctx.run_id)
    spec: Speculation | None = turn.speculation
    messages = answer_messages(in_layout(s.retrieved, tuple(s.layout)), s.question)
    notes = list(s.notes)
    hit = False
    try:
        if spec is not None:
            wait = PREFILL_WAIT_S if ctx.deadline is None else min(PREFILL_WAIT_S, ctx.deadline - time.time() - 1.0)
            hit = await spec.settle(messages[0].content, wait)
            spec.close()
            if spec.counts.get("prefill_started") and not hit:
                notes.append("answer: no prefill of this prompt's prefix was ready; the answer prompt was prefilled in full")
        try:
            out = await ctx.llm.stream(GenerateRequest(messages=messages, max_tokens=s.max_tokens, temperature=0.0))
        except DeadlineExceeded:
            return {"prefill_hit": hit, "speculation": dict(spec.counts) if spec else {}, "notes": [*notes, "answer: the deadline passed before the answer was written"]}
        ttft = None if out.first_at is None or s.final_at is None else max(out.first_at - s.final_at, 0.0)
        if ttft is not None:
            first_token(ttft, s.speculate)
            prefilled = "its prefix was prefilled" if hit else "nothing of it was prefilled by this turn"
            notes.append(f"answer: first token {ttft:.2f} s after the final input; {prefilled}")
        return {
            "answer": out.text.strip(),
            "ttft_s": ttft,
            "prefill_hit": hit,
            "speculation": dict(spec.counts) if spec else {},
            "notes": notes,
        }
    finally:
        turns.close(ctx.run_id)


stream_rag.then(listen, retrieve, answer)
register(stream_rag)
