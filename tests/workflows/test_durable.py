"""Durable runs: the SQLite run store, and resuming after the process is killed mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import BaseModel

from sloflow.errors import ConfigError
from sloflow.workflows import MemoryRunStore, Registry, RunStatus, Runtime, SqliteRunStore, Workflow
from sloflow.workflows.checkpoints import open_checkpointer
from sloflow.workflows.records import RunRecord

WORKER = Path(__file__).with_name("crash_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _worker(home: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(WORKER), str(home), mode], stdout=subprocess.PIPE, text=True, env=env)


def test_a_killed_run_resumes_from_its_checkpoint_without_repeating_finished_stages(tmp_path: Path):
    first = _worker(tmp_path, "start")
    run_id = first.stdout.readline().strip()
    deadline = time.time() + 60
    while not (tmp_path / "reached").exists():
        assert time.time() < deadline and first.poll() is None, "the worker never reached the hanging stage"
        time.sleep(0.05)
    time.sleep(0.5)  # let the finished fan-out instance's writes reach the checkpoint
    first.send_signal(signal.SIGKILL)
    first.wait(10)

    store = SqliteRunStore(tmp_path / "runs.sqlite")
    assert store.get(run_id).status is RunStatus.running  # the dead process left it mid-run
    store.close()

    second = _worker(tmp_path, "resume")
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0
    result = json.loads(out.strip().splitlines()[-1])
    (record,) = result["records"]
    assert record["id"] == run_id and record["status"] == "succeeded"
    # every stage's effect on the state is applied exactly once
    assert sorted(record["output"]["done"]) == ["finish", "part0", "part1", "prepare"]
    lines = [line.split() for line in (tmp_path / "effects.log").read_text().splitlines()]
    by_stage = Counter(what for _, what in lines)
    # finished stages did not run again; only the instance that was cut off ran twice
    assert by_stage == {"prepare": 1, "part0": 1, "part1": 2, "finish": 1}
    assert {pid for pid, what in lines if what == "finish"} == {str(second.pid)}
    assert "run_resumed" in result["events"][run_id]


class Q(BaseModel):
    q: str


async def test_runs_and_events_persist_in_sqlite_and_read_from_any_id(tmp_path: Path):
    registry = Registry()
    wf = Workflow("two", state=Q, slo=30.0)

    @wf.stage
    async def one(s, ctx):
        ctx.emit("halfway")

    @wf.stage
    async def two(s, ctx):
        return {"q": s.q + "!"}

    registry.add(wf.then(one, two))
    async with Runtime.open(tmp_path, registry=registry) as runtime:
        run = await runtime.run("two", {"q": "hi"})
    store = SqliteRunStore(tmp_path / "runs.sqlite")
    saved = store.get(run.id)
    assert saved.status is RunStatus.succeeded and saved.output == {"q": "hi!"} and saved.deadline_met is True
    assert saved.started_at <= saved.finished_at <= saved.deadline
    assert [t["stage"] for t in saved.stages] == ["one", "two"] and all(t["duration_s"] >= 0 for t in saved.stages)
    events = store.events(run.id)
    assert [e.kind for e in events] == [
        "run_started", "stage_started", "progress", "stage_finished", "stage_started", "stage_finished", "run_finished"
    ]
    assert store.events(run.id, after=3) == events[3:]
    store.close()


async def test_a_queued_run_left_by_a_dead_process_starts_on_resume(tmp_path: Path):
    registry = Registry()
    wf = Workflow("one", state=Q)
    wf.stage(_shout, name="shout")
    registry.add(wf)
    store = SqliteRunStore(tmp_path / "runs.sqlite")
    store.create(RunRecord(id="r1", workflow="one", status=RunStatus.queued, input={"q": "x"}, created_at=time.time()))
    store.close()
    async with Runtime.open(tmp_path, registry=registry) as runtime:
        assert await runtime.resume_unfinished() == ["r1"]
        done = await runtime.wait("r1")
    assert done.status is RunStatus.succeeded and done.output == {"q": "X"}


async def _shout(s, ctx):
    return {"q": s.q.upper()}


async def test_shutdown_interrupts_runs_so_the_next_start_resumes_them(tmp_path: Path):
    registry = Registry()
    gate = asyncio.Event()
    wf = Workflow("held", state=Q)

    @wf.stage
    async def first(s, ctx):
        return {"q": s.q + "1"}

    @wf.stage
    async def wait_here(s, ctx):
        await gate.wait()
        return {"q": s.q + "2"}

    registry.add(wf.then(first, wait_here))
    async with Runtime.open(tmp_path, registry=registry) as runtime:
        run = await runtime.start("held", {"q": "x"})
        while not any(e.stage == "wait_here" for e in runtime.store.events(run.id)):
            await asyncio.sleep(0.01)
    gate.set()
    async with Runtime.open(tmp_path, registry=registry) as runtime:
        assert runtime.get(run.id).status is RunStatus.running
        await runtime.resume_unfinished()
        done = await runtime.wait(run.id)
    assert done.status is RunStatus.succeeded and done.output == {"q": "x12"}


async def test_a_postgres_url_needs_the_postgres_extra():
    try:
        import langgraph.checkpoint.postgres  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'sloflow\[postgres\]'"):
            async with open_checkpointer("postgresql://localhost/sloflow"):
                pass
    else:
        pytest.skip("the postgres extra is installed; this checks the message when it is not")


def test_the_memory_store_forgets_the_oldest_finished_runs():
    store = MemoryRunStore(keep=10)
    for i in range(30):
        store.create(RunRecord(id=f"r{i}", workflow="w", status=RunStatus.succeeded, input={}, created_at=i))
    store.create(RunRecord(id="live", workflow="w", status=RunStatus.running, input={}, created_at=99))
    kept = {r.id for r in store.runs(limit=100)}
    assert "live" in kept and "r29" in kept and "r0" not in kept and len(kept) <= 11
