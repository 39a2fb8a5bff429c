"""Support triage: classify a ticket, then draft from several angles (fan-out) or answer directly."""

import operator
from typing import Annotated

from pydantic import BaseModel

from sloflow import Cost, Workflow, register


class Ticket(BaseModel):
    text: str
    angles: list[str] = ["cause", "fix"]
    kind: str = ""
    drafts: Annotated[list[str], operator.add] = []  # fan-in: each draft instance appends
    reply: str = ""


triage = Workflow("triage", state=Ticket, slo=60.0, description="classify, draft or answer, sign")


@triage.stage(cost=Cost(calls=1, prompt=60, output=4))
async def classify(t, ctx):
    word = await ctx.llm.text(f"Is this a bug report or a question? One word.\n{t.text}", max_tokens=4)
    return {"kind": "bug" if "bug" in word.lower() else "question"}


@triage.stage(cost=Cost(calls=1, prompt=60, output=24), fan_out="angles")
async def draft(t, ctx, angle):
    return {"drafts": [await ctx.llm.text(f"In one sentence, the likely {angle} of: {t.text}", max_tokens=24)]}


@triage.stage(cost=Cost(calls=1, prompt=60, output=24))
async def answer(t, ctx):
    return {"reply": await ctx.llm.text(f"Answer in one sentence: {t.text}", max_tokens=24)}


@triage.stage(cost=Cost(calls=1, prompt=100, output=32))
async def combine(t, ctx):
    return {"reply": await ctx.llm.text("Merge into one short reply:\n" + "\n".join(t.drafts), max_tokens=32)}


@triage.stage(cost=Cost(seconds=0.01))
async def sign(t, ctx):
    return {"reply": t.reply.strip() + "\n-- the support team"}


triage.branch(classify, lambda t: draft if t.kind == "bug" else answer, options=[draft, answer])
triage.then(draft, combine, sign)
triage.then(answer, sign)
register(triage)
