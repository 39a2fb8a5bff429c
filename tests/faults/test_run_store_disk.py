"""A full disk under the run store: a clear 503, nothing half-written, the server stays up.

The disk is real: a small tmpfs mounted for the test and filled up (needs root to mount; skipped
with a message otherwise). Linux refuses a read-only remount while the store holds its files open
for writing; test_read_only_disk.py plays a store opened on a disk already read-only.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from sloflow.api.auth import OpenAccess
from sloflow.api.errors import install_error_handlers
from sloflow.api.health import router as health_router
from sloflow.api.runs import router
from sloflow.workflows import Registry, Runtime, Workflow
from sloflow.workflows.run_store import RUNS_FILE
from tests.faults.disks import small_disk

pytestmark = pytest.mark.faults


class Note(BaseModel):
    text: str
    words: int = 0


def count_words() -> Workflow:
    wf = Workflow("count", state=Note, slo=30.0)

    @wf.stage
    async def count(s, ctx):
        return {"words": len(s.text.split())}

    return wf.then(count)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    with small_disk(tmp_path) as disk:
        registry = Registry()
        registry.add(count_words())
        async with Runtime.open(disk, checkpoints="memory", registry=registry) as runtime:
            app = FastAPI()
            install_error_handlers(app)
            app.include_router(router)
            app.include_router(health_router)
            app.state.runtime, app.state.auth, app.state.models = runtime, OpenAccess(), ["none"]
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30) as client:
                yield client, disk


async def _run(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post("/v1/workflows/count/runs", params={"wait": "true"}, json={"input": {"text": text}})


def _intact(disk: Path) -> int:
    """The store passes SQLite's integrity check; returns how many runs it holds."""
    with contextlib.closing(sqlite3.connect(f"file:{disk / RUNS_FILE}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


async def test_full_disk_refuses_new_runs_clearly_and_recovers(served: tuple[httpx.AsyncClient, Path]) -> None:
    client, disk = served
    assert (await _run(client, "warm up")).status_code == 200
    filler = disk / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):  # write until the disk is full
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    refused = None
    for i in range(200):  # SQLite may fit a few rows in pages it already has
        refused = await _run(client, "x " * 2000 + str(i))
        if refused.status_code != 200:
            break
    assert refused is not None and refused.status_code == 503, refused.text
    assert refused.json()["code"] == "storage_unavailable" and "full" in refused.json()["message"]
    assert refused.json()["details"]["cause"] == "disk_full"
    assert (await client.get("/v1/health")).status_code == 200
    filler.unlink()
    after = await _run(client, "room again")
    assert after.status_code == 200 and after.json()["status"] == "succeeded"
    _intact(disk)
