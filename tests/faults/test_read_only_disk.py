"""A run store whose disk turned read-only while the server was stopped: old runs are served, new runs get a
clear 503, nothing on the disk changes, the server stays up.

The disk is real: a small tmpfs (needs root to mount; skipped with a message otherwise). Runs are
recorded on it, the runtime is closed (Linux refuses a read-only remount while files are open for
writing), the tmpfs is remounted read-only, and the runtime and the runs API are opened on it.
`sloflow serve` itself refuses a read-only home at start, saying why: it writes more than runs there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from sloflow.api.auth import OpenAccess
from sloflow.api.errors import install_error_handlers
from sloflow.api.health import router as health_router
from sloflow.api.runs import router
from sloflow.errors import StorageError
from sloflow.processes import free_port
from sloflow.workflows import Registry, RunStatus, Runtime, SqliteRunStore, Workflow
from sloflow.workflows.records import RunRecord
from tests.faults.disks import mount, small_disk

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]


class Note(BaseModel):
    text: str
    words: int = 0


def workflows(gate: asyncio.Event) -> Registry:
    """`count`, one quick stage; `held`, whose stage waits for `gate`, to leave a run unfinished."""
    registry = Registry()
    count = Workflow("count", state=Note, slo=30.0)
    held = Workflow("held", state=Note, slo=300.0)

    @count.stage
    async def words(s, ctx):
        return {"words": len(s.text.split())}

    @held.stage
    async def later(s, ctx):
        await gate.wait()
        return {"words": len(s.text.split())}

    registry.add(count.then(words))
    registry.add(held.then(later))
    return registry


def _client(runtime: Runtime) -> httpx.AsyncClient:
    """A client of the runs and health routes served over `runtime`."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health_router)
    app.state.runtime, app.state.auth, app.state.models = runtime, OpenAccess(), ["none"]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30)


async def _run(client: httpx.AsyncClient, workflow: str, text: str, *, wait: bool = False) -> httpx.Response:
    return await client.post(f"/v1/workflows/{workflow}/runs", params={"wait": str(wait).lower()}, json={"input": {"text": text}})


def _digests(disk: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(disk.iterdir())}


def _integrity(db_file: Path) -> str:
    with contextlib.closing(sqlite3.connect(db_file)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


async def test_read_only_disk_serves_old_runs_refuses_new_ones_clearly_and_stays_up(tmp_path: Path) -> None:
    gate = asyncio.Event()
    registry = workflows(gate)
    with small_disk(tmp_path) as disk:
        async with Runtime.open(disk, registry=registry) as runtime:
            async with _client(runtime) as client:
                done = [(await _run(client, "count", text, wait=True)).json()["id"] for text in ("one two", "three four five")]
                unfinished = (await _run(client, "held", "for later")).json()["id"]
            async with asyncio.timeout(10):
                while runtime.get(unfinished).status is not RunStatus.running:
                    await asyncio.sleep(0.01)
        # The server stopped: its files are closed and the held run stays `running`, to be resumed.
        recorded = _digests(disk)
        try:
            mount("-o", "remount,ro", str(disk))
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot remount the tmpfs read-only: {exc.stderr}")

        async with Runtime.open(disk, registry=registry) as runtime:
            assert await runtime.resume_unfinished() == []  # as `sloflow serve` calls it at start
            async with _client(runtime) as client:
                assert (await client.get("/v1/health")).status_code == 200
                listed = {r["id"]: r["status"] for r in (await client.get("/v1/runs")).json()["runs"]}
                assert listed == {done[0]: "succeeded", done[1]: "succeeded", unfinished: "running"}
                old = (await client.get(f"/v1/runs/{done[1]}")).json()
                assert old["output"]["words"] == 3 and [s["stage"] for s in old["stages"]] == ["words"]
                stream = (await client.get(f"/v1/runs/{done[1]}/events")).text
                kinds = [line[7:] for line in stream.splitlines() if line.startswith("event: ")]
                assert kinds == ["run_started", "stage_started", "stage_finished", "run_finished"]
                for wait in (False, True):
                    refused = await _run(client, "count", "new", wait=wait)
                    assert refused.status_code == 503, refused.text
                    body = refused.json()
                    assert body["code"] == "storage_unavailable" and body["details"]["cause"] == "read_only"
                    assert "read-only disk" in body["message"] and "remount it read-write" in body["message"], body
                cancel = await client.post(f"/v1/runs/{unfinished}/cancel")  # would record its end: refused too
                assert cancel.status_code == 503 and cancel.json()["details"]["cause"] == "read_only", cancel.text
                assert (await client.get(f"/v1/runs/{unfinished}")).json()["status"] == "running"
                assert (await client.get("/v1/health")).status_code == 200
                assert len((await client.get("/v1/runs")).json()["runs"]) == 3
        assert _digests(disk) == recorded  # nothing was written, so nothing can be half-written

        # Writable again: the stores pass SQLite's check, the held run resumes and new runs start.
        mount("-o", "remount,rw", str(disk))
        assert _integrity(disk / "runs.sqlite") == _integrity(disk / "checkpoints.sqlite") == "ok"
        gate.set()
        async with Runtime.open(disk, registry=registry) as runtime:
            assert await runtime.resume_unfinished() == [unfinished]
            assert (await runtime.wait(unfinished)).status is RunStatus.succeeded
            assert (await runtime.run("count", {"text": "back again"})).status is RunStatus.succeeded


def test_a_store_left_by_a_killed_process_is_read_through_its_journal(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        live, left = disk / "live", disk / "left"
        store = SqliteRunStore(live / "runs.sqlite")
        record = RunRecord(id="r1", workflow="count", status=RunStatus.running, input={"text": "x"}, created_at=1.0)
        store.create(record)
        # What a SIGKILL leaves: the committed row still in the -wal journal, beside its -shm.
        left.mkdir()
        for name in ("runs.sqlite", "runs.sqlite-wal", "runs.sqlite-shm"):
            shutil.copy(live / name, left / name)
        store.close()
        assert (left / "runs.sqlite-wal").stat().st_size > 0
        try:
            mount("-o", "remount,ro", str(disk))
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot remount the tmpfs read-only: {exc.stderr}")
        reopened = SqliteRunStore(left / "runs.sqlite")
        try:
            assert reopened.read_only and reopened.get("r1").status is RunStatus.running
            with pytest.raises(StorageError, match="read-only disk"):
                reopened.update("r1", status=RunStatus.failed)
        finally:
            reopened.close()


def test_serve_refuses_to_start_on_a_read_only_home_saying_why(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        try:
            mount("-o", "remount,ro", str(disk))
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot remount the tmpfs read-only: {exc.stderr}")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOFLOW_HOME": str(disk), "SLOFLOW_AUTH": "false"}
        cmd = [sys.executable, "-m", "sloflow.cli", "serve", "--port", str(free_port())]
        # It stops before Ray or any worker starts: the keys and quotas it keeps there could not be written.
        served = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert served.returncode == 2, served.stderr[-2000:]
    assert f"SLOFLOW_HOME {disk} is read-only" in served.stderr and "remount it read-write" in served.stderr
    assert "Traceback" not in served.stderr
