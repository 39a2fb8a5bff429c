"""A process that runs a workflow which can be killed mid-run, and restarted to resume it.

    python crash_worker.py HOME start    start a run, print its id, block in the run
    python crash_worker.py HOME resume   resume unfinished runs, print their records as JSON

Every stage appends a line to HOME/effects.log (a side effect outside the state), so the test can
tell which stages ran in which process. The second fan-out instance hangs in the first process.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel

from sloflow.workflows import Registry, Runtime, Workflow


class Job(BaseModel):
    name: str
    done: Annotated[list[str], operator.add] = []


def build(home: Path) -> Workflow:
    wf = Workflow("crashy", state=Job)

    def effect(what: str) -> None:
        with open(home / "effects.log", "a") as f:
            f.write(f"{os.getpid()} {what}\n")

    @wf.stage
    async def prepare(s, ctx):
        effect("prepare")
        return {"done": ["prepare"]}

    @wf.stage(fan_out=2)
    async def part(s, ctx, i):
        effect(f"part{i}")
        if i == 1 and not (home / "reached").exists():
            (home / "reached").touch()
            await asyncio.sleep(600)  # killed here
        return {"done": [f"part{i}"]}

    @wf.stage
    async def finish(s, ctx):
        effect("finish")
        return {"done": ["finish"]}

    wf.then(prepare, part, finish)
    return wf


async def main(home: Path, mode: str) -> None:
    registry = Registry()
    registry.add(build(home))
    async with Runtime.open(home, registry=registry) as runtime:
        if mode == "start":
            record = await runtime.start("crashy", {"name": "job"})
            print(record.id, flush=True)
            await runtime.wait(record.id)
        else:
            ids = await runtime.resume_unfinished()
            records = [asdict(await runtime.wait(i)) for i in ids]
            events = {i: [e.kind for e in runtime.store.events(i)] for i in ids}
            print(json.dumps({"records": records, "events": events}, default=str), flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
