"""Replays workflow requests through a live `LLMClient`, as the simulator does, to validate it.

Each request releases its stages in order; a stage's calls go out in parallel with the budget the
`BudgetModel` gives them. Prompts are raw text sized to the call's prompt tokens (about four
characters a token), with the stage's shared template first so prompt caches can be reused, and
end in a counting cue so the model tends to write all `output_tokens`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sloflow.llm.client import CallContext, LLMClient
from sloflow.llm.types import GenerateRequest
from sloflow.scheduler.simulator import BudgetModel
from sloflow.scheduler.traces import CallShape, RequestShape

_WORDS = "amber basil cedar delta ember fjord garnet harbor island juniper kelp lagoon meadow nectar".split()
_CUE = "\nCount onwards without stopping: 1, 2, 3, 4,"


def _words(tokens: int, salt: int) -> str:
    # Words of five letters plus a space: about 1.5 tokens each under the four-characters rule.
    n = max(int(tokens / 1.5), 1)
    return " ".join(_WORDS[(i * 5 + salt) % len(_WORDS)] for i in range(n))


def prompt_for(call: CallShape, salt: int) -> str:
    """A prompt of about `call.prompt_tokens` tokens: the step's template, then request-specific text."""
    template = f"[{call.step}] " + _words(call.prefix_tokens, 0) if call.prefix_tokens else ""
    rest = max(call.prompt_tokens - call.prefix_tokens - 12, 1)
    return f"{template}\n#{salt} " + _words(rest, salt) + _CUE


async def replay(
    client: LLMClient,
    shapes: Sequence[RequestShape],
    arrivals: Sequence[float],
    deadlines_s: Sequence[float],
    budgets: BudgetModel,
    *,
    workflow: str = "replay",
) -> list[float]:
    """Run every request at its arrival offset; return each request's latency in seconds."""
    start = time.time()

    async def one(i: int, shape: RequestShape, at: float, slo: float) -> float:
        await asyncio.sleep(max(start + at - time.time(), 0.0))
        begun = time.time()
        deadline = begun + slo
        seen: dict[str, int] = {}
        for stage in shape.stages:
            step = stage[0].step
            seen[step] = seen.get(step, 0) + 1
            budget = budgets.budget(step, seen[step], deadline - time.time())
            ctx = CallContext(
                run_id=str(i), workflow=workflow, stage=step, deadline=deadline, budget_s=budget,
                prefix_key=step if stage[0].prefix_tokens else None,
            )
            await asyncio.gather(
                *(
                    _call(client, GenerateRequest(prompt=prompt_for(c, i * 31 + j), max_tokens=c.output_tokens, temperature=0.0), ctx)
                    for j, c in enumerate(stage)
                )
            )
        return time.time() - begun

    return list(await asyncio.gather(*(one(i, s, a, d) for i, (s, a, d) in enumerate(zip(shapes, arrivals, deadlines_s, strict=True)))))


async def _call(client: LLMClient, request: GenerateRequest, ctx: CallContext) -> None:
    # A request whose deadline passed still runs to the end: its latency is what we measure.
    if ctx.deadline is not None and ctx.deadline <= time.time():
        ctx = CallContext(run_id=ctx.run_id, workflow=ctx.workflow, stage=ctx.stage, deadline=time.time() + 1e-3, budget_s=0.0, prefix_key=ctx.prefix_key)
    await client.generate(request, ctx)
