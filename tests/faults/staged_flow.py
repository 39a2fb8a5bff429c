"""`staged`, the workflow the restart test serves (`sloflow serve --load THIS_FILE`): three slow stages, no LLM.

Each stage appends a line to `SLOFLOW_HOME/effects.log` when it ends, a side effect outside the
state, so the test can count how many times a stage's work was done across the two processes.
While `SLOFLOW_HOME/hold` exists, `transform` does not end: the test kills the server there, so the
kill lands inside a stage however slow the machine is.
"""

from __future__ import annotations

import asyncio
import operator
import os
from typing import Annotated

from pydantic import BaseModel

from sloflow import Workflow, register
from sloflow.config import get_settings

STAGE_S = 1.5  # long enough to kill the server while every run is inside a stage


class Job(BaseModel):
    name: str
    done: Annotated[list[str], operator.add] = []


staged = Workflow("staged", state=Job, slo=120.0, description="three slow stages that only record that they ran")


def _effect(job: str, stage: str) -> None:
    with (get_settings().home / "effects.log").open("a") as f:
        f.write(f"{os.getpid()} {job} {stage}\n")


async def _work(s: Job, stage: str, held: bool = False) -> dict:
    await asyncio.sleep(STAGE_S)
    while held and (get_settings().home / "hold").exists():
        await asyncio.sleep(0.1)
    _effect(s.name, stage)
    return {"done": [stage]}


@staged.stage
async def fetch(s, ctx):
    return await _work(s, "fetch")


@staged.stage
async def transform(s, ctx):
    return await _work(s, "transform", held=True)


@staged.stage
async def publish(s, ctx):
    return await _work(s, "publish")


register(staged.then(fetch, transform, publish))
