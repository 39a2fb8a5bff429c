"""The one thing the scheduler places: a `Call`, how an LLM request becomes one, and its budget."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sloflow.llm.client import CallContext
from sloflow.llm.types import GenerateRequest, approx_tokens, prefix_blocks, shared_prefix

Priority = Literal["interactive", "background"]


@dataclass(slots=True)
class Call:
    """One LLM call: who makes it, its expected size, when it was released and when it is due.

    Times are seconds on whatever clock the caller passes as `now` (wall clock live, simulated
    time in the simulator). `deadline` is the call's own due time (release + budget, at most the
    request's deadline); None makes it a background call that only fills idle capacity.
    """

    id: str
    prompt_tokens: int
    output_tokens: int
    release: float
    deadline: float | None = None
    request_deadline: float | None = None  # the whole request's deadline, when known
    run_id: str = ""
    workflow: str = ""
    stage: str = ""
    tenant: str | None = None
    prefix_key: str | None = None  # a shared prompt prefix (e.g. hash of system prompt + evidence)
    prefix_tokens: int = 0  # how many leading prompt tokens that prefix covers
    prefix_blocks: tuple[str, ...] = ()  # chained hashes of that prefix's blocks, to match a partly held one
    model: str | None = None  # a specific model, or None for any worker
    warms_cache: bool = False  # a background prefill for a deadline call to come (see CallContext)

    @property
    def priority(self) -> Priority:
        return "background" if self.deadline is None else "interactive"

    @property
    def prefix_keys(self) -> tuple[str, ...]:
        """What a worker holds once it has run this call: its prefix's key and its blocks' hashes."""
        return () if self.prefix_key is None else (self.prefix_key, *self.prefix_blocks)

    @property
    def kv_tokens(self) -> int:
        """Context (KV-cache) tokens the call occupies while it runs."""
        return self.prompt_tokens + self.output_tokens

    def log_ids(self) -> dict[str, str]:
        """The ids a log line about this call carries (see `sloflow.logs`)."""
        ids = {"call_id": self.id, "run_id": self.run_id, "workflow": self.workflow, "stage": self.stage, "tenant": self.tenant}
        return {k: v for k, v in ids.items() if v}


def call_budget(remaining_s: float, stage_s: float, later_stages_s: Sequence[float]) -> float:
    """HEXGEN's per-call budget: the stage's share of the request's remaining time.

    budget = remaining * tbar(stage) / (tbar(stage) + sum tbar(later stages)); a late request
    (remaining <= 0) gets a zero budget, which makes its calls the most urgent.
    """
    total = stage_s + sum(later_stages_s)
    if remaining_s <= 0 or total <= 0:
        return max(remaining_s, 0.0)
    return remaining_s * stage_s / total


def to_call(request: GenerateRequest, ctx: CallContext, now: float | None = None) -> Call:
    """The `Call` the scheduler places for `request` made under `ctx`.

    The call's own deadline is its budget from now (at most the request's deadline); token counts
    are estimated from the text (four characters a token), since the dispatcher must decide before
    any worker has tokenized it.
    """
    now = time.time() if now is None else now
    if request.messages is not None:
        texts = [m.content for m in request.messages]
        prefix = sum(approx_tokens(m.content) for m in shared_prefix(request.messages))
        blocks = prefix_blocks(request.messages) if ctx.prefix_key else ()
    else:
        texts = [request.prompt or ""]
        prefix, blocks = 0, ()
    deadline = ctx.deadline
    if deadline is not None and ctx.budget_s is not None:
        deadline = min(deadline, now + ctx.budget_s)
    return Call(
        id=uuid.uuid4().hex,
        prompt_tokens=sum(approx_tokens(t) for t in texts),
        output_tokens=request.max_tokens,
        release=now,
        deadline=deadline,
        request_deadline=ctx.deadline,
        run_id=ctx.run_id,
        workflow=ctx.workflow,
        stage=ctx.stage,
        tenant=ctx.tenant,
        prefix_key=ctx.prefix_key,
        prefix_tokens=prefix if ctx.prefix_key else 0,
        prefix_blocks=blocks,
        model=ctx.model,
        warms_cache=ctx.warms_cache,
    )
