"""The API process killed mid-run and started again on the same home: runs finish, SSE misses nothing.

A real `sloflow serve` on loopback plays it, with the `staged` workflow of staged_flow.py (three
stages of 1.5 s, no LLM call) and one emulated LLM worker: the server always starts workers, and
an emulated one loads no model. Each run's event stream is read until the run is inside its
second stage, the server is SIGKILLed, started again on the same home and port, and each stream is
reopened with Last-Event-ID, as an SSE client reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sloflow.processes import free_port, wait_ready
from tests.serving import kill_session

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
FLOW = Path(__file__).with_name("staged_flow.py")
JOBS = ("a", "b", "c")
STAGES = ["fetch", "transform", "publish"]
START_S = 150.0  # a cold start: Ray, the worker's speed probe, the demo data the server prepares


@contextlib.contextmanager
def api_process(home: Path, port: int, log_name: str) -> Iterator[subprocess.Popen]:
    """`sloflow serve` on `port` over `home` until it answers health; on exit it is killed with all it started."""
    workers = home.parent / "workers.json"
    workers.write_text(json.dumps({"workers": [{"id": "emu", "backend": "emulated", "model": "emu"}]}))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # the server and its Ray workers run the code under test
        "SLOFLOW_HOME": str(home),
        "SLOFLOW_AUTH": "false",
        "SLOFLOW_RAY_DASHBOARD": "false",
        "SLOFLOW_LOG_FORMAT": "text",
        "SLOFLOW_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "sloflow.cli", "serve", "--port", str(port), "--workers", str(workers), "--load", str(FLOW)]
    log_path = home.parent / log_name
    with log_path.open("wb") as log:
        # Its own session, so everything it starts (Ray and its agents) can be found and killed.
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            health = f"http://127.0.0.1:{port}/v1/health"
            wait_ready(proc, lambda: httpx.get(health, timeout=2).status_code == 200, timeout_s=START_S,
                       output=lambda: log_path.read_text(errors="replace"))
            yield proc
        finally:
            kill_session(proc)


async def follow(http: httpx.AsyncClient, run_id: str, after: int, seen: list[dict]) -> None:
    """Append the run's events after id `after` to `seen` until the stream ends or the server goes away."""
    headers = {"Last-Event-ID": str(after)} if after else {}
    sse_id = None
    with contextlib.suppress(httpx.TransportError):  # the server was killed under the stream
        async with http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("id: "):
                    sse_id = int(line[4:])
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    assert event["id"] == sse_id  # the SSE id is the one to resume after
                    seen.append(event)


def _inside_transform(events: list[dict]) -> bool:
    return bool(events) and (events[-1]["kind"], events[-1]["stage"]) == ("stage_started", "transform")


def _steps(events: list[dict]) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["stage"]) for e in events]


@pytest.mark.timeout(3 * START_S)
async def test_killed_api_resumes_runs_and_sse_clients_miss_no_event(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    ids: dict[str, str] = {}
    before: dict[str, list[dict]] = {job: [] for job in JOBS}
    after: dict[str, list[dict]] = {job: [] for job in JOBS}
    (home / "hold").touch()  # `transform` does not end until the file is gone

    with api_process(home, port, "first.log") as first:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for job in JOBS:
                created = await http.post("/v1/workflows/staged/runs", json={"input": {"name": job}})
                assert created.status_code == 202, created.text
                ids[job] = created.json()["id"]
            readers = [asyncio.create_task(follow(http, ids[job], 0, before[job])) for job in JOBS]
            async with asyncio.timeout(60):
                while not all(_inside_transform(before[job]) for job in JOBS):
                    await asyncio.sleep(0.05)
            kill_session(first)  # the fault: SIGKILL, mid-stage, with three streams open
            async with asyncio.timeout(30):
                await asyncio.gather(*readers)
    (home / "hold").unlink()

    with api_process(home, port, "second.log") as second:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            async with asyncio.timeout(60):  # each stream ends when its run has finished
                await asyncio.gather(*(follow(http, ids[job], before[job][-1]["id"], after[job]) for job in JOBS))
            records = {job: (await http.get(f"/v1/runs/{ids[job]}")).json() for job in JOBS}
    assert f"resumed {len(JOBS)} unfinished run(s)" in (tmp_path / "second.log").read_text()

    for job in JOBS:
        events = before[job] + after[job]
        assert [e["id"] for e in events] == list(range(1, len(events) + 1)), _steps(events)  # no gap, no repeat
        assert _steps(before[job]) == [
            ("run_started", None), ("stage_started", "fetch"), ("stage_finished", "fetch"), ("stage_started", "transform"),
        ]
        # The new process picks the run up inside `transform`: `fetch`, checkpointed as finished, is not run again.
        assert _steps(after[job]) == [
            ("run_resumed", None), ("stage_started", "transform"), ("stage_finished", "transform"),
            ("stage_started", "publish"), ("stage_finished", "publish"), ("run_finished", None),
        ]
        assert after[job][-1]["data"]["status"] == "succeeded"
        assert records[job]["status"] == "succeeded" and records[job]["output"]["done"] == STAGES
        assert [s["stage"] for s in records[job]["stages"]] == STAGES
    # Each stage's work was done once, across both processes: `fetch` by the first, the rest by the second.
    effects = [line.split() for line in (home / "effects.log").read_text().splitlines()]
    assert Counter((job, stage) for _, job, stage in effects) == {(job, stage): 1 for job in JOBS for stage in STAGES}
    assert {(stage, int(pid)) for pid, _, stage in effects} == {
        ("fetch", first.pid), ("transform", second.pid), ("publish", second.pid)
    }
