"""`bench-short`, the short workflow `sloflow bench api` runs: two LLM calls of a few tokens each.

The server loads it with `sloflow serve --load sloflow.bench.api_flow`.
"""

from __future__ import annotations

from pydantic import BaseModel

from sloflow import Cost, Workflow, register


class Short(BaseModel):
    question: str
    topic: str = ""
    answer: str = ""


short = Workflow("bench-short", state=Short, slo=20.0, description="name the topic, then answer in a few words")


@short.stage(cost=Cost(calls=1, prompt=40, output=4))
async def topic(s, ctx):
    return {"topic": await ctx.llm.text(f"In two words, the topic of: {s.question}", max_tokens=4)}


@short.stage(cost=Cost(calls=1, prompt=60, output=8))
async def answer(s, ctx):
    return {"answer": await ctx.llm.text(f"Topic: {s.topic}\nAnswer in a few words: {s.question}", max_tokens=8)}


short.then(topic, answer)
register(short)
