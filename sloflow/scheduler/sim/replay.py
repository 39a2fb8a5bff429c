"""Replays workflow requests through a live `LLMClient`, as the simulator does, to validate it.

Each request releases its stages in order; a stage's calls go out in parallel with the budget the
`BudgetModel` gives them. Prompts are built so the real workers see exactly the calls the simulator
models:

- every word of a prompt is one token under both embedded tokenizers (SmolLM2's and Gemma 3's;
  `_VOCAB` was checked against both), so a prompt holds `prompt_tokens` tokens (Gemma adds a BOS);
- a call starts with its step's template (the step's own fixed word sequence, `prefix_tokens`
  long), then words unique to the call, so llama.cpp's prompt cache reuses exactly the template
  when the instance last served the same step, and never more (two calls never share a prompt);
- a counting cue ends the prompt and the request asks the backend to ignore end-of-sequence, so a
  call decodes exactly `output_tokens` tokens.

Through a `SchedulerClient` each call reaches the dispatcher carrying the trace's token counts and
prefix (as the simulator's calls do), not counts guessed from the text.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sloflow.llm.client import CallContext, LLMClient
from sloflow.llm.types import Completion, GenerateRequest
from sloflow.scheduler.policies.call import to_call
from sloflow.scheduler.sim.simulator import BudgetModel
from sloflow.scheduler.sim.traces import CallShape, RequestShape

# One token each (with a leading space, and "the" also without) for SmolLM2-135M and Gemma 3 270M.
_VOCAB = (
    "the and for with from that this have will your about which their there would other these could after "
    "first water house world small great right place where under never again three those might while found "
    "still large often light night point young began being below sound since close field order start plant "
    "cover north south story paper river music table city tree line part time year word"
).split()
_CUE = "\nCount onwards without stopping: 1, 2, 3, 4,"  # 18 tokens under both tokenizers
CUE_TOKENS = 18


def _template(step: str, words: int) -> list[str]:
    rng = random.Random(zlib.crc32(step.encode()))
    return ["the"] + [rng.choice(_VOCAB) for _ in range(max(words, 1) - 1)]


def prompt_for(call: CallShape, salt: int) -> str:
    """A prompt of `call.prompt_tokens` tokens: the step's template (`prefix_tokens`), call-specific words, the cue."""
    template = _template(call.step, call.prefix_tokens) if call.prefix_tokens else ["the"]
    rng = random.Random(salt)
    rest = max(call.prompt_tokens - len(template) - CUE_TOKENS, 1)
    return " ".join(template + [rng.choice(_VOCAB) for _ in range(rest)]) + _CUE


async def replay(
    client: LLMClient,
    shapes: Sequence[RequestShape],
    arrivals: Sequence[float],
    deadlines_s: Sequence[float],
    budgets: BudgetModel,
    *,
    workflow: str = "replay",
    log: list[dict[str, Any]] | None = None,
    done: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Run every request at its arrival offset; return each request's latency in seconds.

    `done(i, latency)` is called as each request finishes, so a caller can stop the replay early.

    With `log`, one record per call is appended: request, stage, index, step, expected and real
    token counts, the model that served it, when it was sent and answered (seconds from the start)
    and the backend's own ttft and total time.
    """
    start = time.time()

    async def one(i: int, shape: RequestShape, at: float, slo: float) -> float:
        await asyncio.sleep(max(start + at - time.time(), 0.0))
        begun = time.time()
        deadline = begun + slo
        seen: dict[str, int] = {}
        for k, stage in enumerate(shape.stages):
            step = stage[0].step
            seen[step] = seen.get(step, 0) + 1
            budget = budgets.budget(step, seen[step], deadline - time.time())
            ctx = CallContext(
                run_id=str(i), workflow=workflow, stage=step, deadline=deadline, budget_s=budget,
                prefix_key=step if stage[0].prefix_tokens else None,
            )

            async def timed(j: int, c: CallShape) -> None:
                request = GenerateRequest(
                    prompt=prompt_for(c, (i * 97 + k) * 31 + j), max_tokens=c.output_tokens, temperature=0.0, ignore_eos=True
                )
                sent = time.time()
                out = await _call(client, request, ctx, c)
                if log is not None:
                    log.append({
                        "request": i, "stage": k, "index": j, "step": step,
                        "prompt_tokens": c.prompt_tokens, "prefix_tokens": c.prefix_tokens, "output_tokens": c.output_tokens,
                        "real_prompt_tokens": out.prompt_tokens, "real_output_tokens": out.completion_tokens,
                        "model": out.model, "sent": round(sent - start, 4), "done": round(time.time() - start, 4),
                        "ttft_s": round(out.ttft_s, 4), "backend_s": round(out.total_s, 4),
                    })

            await asyncio.gather(*(timed(j, c) for j, c in enumerate(stage)))
        latency = time.time() - begun
        if done is not None:
            done(i, latency)
        return latency

    return list(await asyncio.gather(*(one(i, s, a, d) for i, (s, a, d) in enumerate(zip(shapes, arrivals, deadlines_s, strict=True)))))


async def _call(client: LLMClient, request: GenerateRequest, ctx: CallContext, shape: CallShape) -> Completion:
    # A request whose deadline passed still runs to the end: its latency is what we measure.
    if ctx.deadline is not None and ctx.deadline <= time.time():
        ctx = CallContext(run_id=ctx.run_id, workflow=ctx.workflow, stage=ctx.stage, deadline=time.time() + 1e-3, budget_s=0.0, prefix_key=ctx.prefix_key)
    dispatcher = getattr(client, "dispatcher", None)
    if dispatcher is None:
        return await client.generate(request, ctx)
    # The simulator's call: the trace's token counts and prefix, not the text-length guess of to_call.
    call = replace(
        to_call(request, ctx),
        prompt_tokens=shape.prompt_tokens,
        output_tokens=shape.output_tokens,
        prefix_tokens=shape.prefix_tokens if ctx.prefix_key else 0,
    )
    return await dispatcher.generate.remote(call, request)
