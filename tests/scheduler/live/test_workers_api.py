"""Admin worker routes on a real loopback Ray: list with profiles, add a real llama.cpp worker, drain, remove."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sloflow.api.app import create_app
from sloflow.scheduler.live.client import SchedulerClient
from sloflow.scheduler.live.dispatcher import start_scheduler
from sloflow.tenancy import KeyStore
from tests.conftest import TEST_MODEL
from tests.scheduler.live.test_live import emulated

pytestmark = pytest.mark.usefixtures("ray_session")


async def test_admins_list_add_drain_and_remove_workers(test_model_path) -> None:
    dispatcher = await asyncio.to_thread(start_scheduler, {"w-a": emulated("a"), "w-b": emulated("b")}, name="sloflow-dispatcher-admin")
    keys = KeyStore(":memory:")
    _, admin = keys.create("ops", "admin")
    _, member = keys.create("team-a")
    app = create_app(SchedulerClient(dispatcher), ["emulated"], keys=keys, dispatcher=dispatcher)
    h = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=120) as c:
        assert (await c.get("/v1/admin/workers", headers={"Authorization": f"Bearer {member}"})).status_code == 403
        listed = (await c.get("/v1/admin/workers", headers=h)).json()["workers"]
        assert {w["id"] for w in listed} == {"w-a", "w-b"}
        assert all(w["profile"]["decode_s_per_token"] > 0 and w["slots"] == 1 and w["queued"] == 0 for w in listed)
        added = await c.post("/v1/admin/workers", json={"id": "w-real", "model": TEST_MODEL, "threads": 1}, headers=h)
        assert added.status_code == 201, added.text
        assert added.json()["profile"]["source"] == "measured" and added.json()["model"] == TEST_MODEL
        assert len(app.state.profiles) == 3  # the chat route's deadline check sees the new worker
        again = await c.post("/v1/admin/workers", json={"id": "w-real", "model": TEST_MODEL}, headers=h)
        assert again.status_code == 409 and "already exists" in again.json()["message"]
        drained = await c.post("/v1/admin/workers/w-a/drain", headers=h)
        assert drained.status_code == 200 and drained.json()["draining"] is True
        assert (await c.delete("/v1/admin/workers/w-real", headers=h)).status_code == 204
        assert {w["id"] for w in (await c.get("/v1/admin/workers", headers=h)).json()["workers"]} == {"w-a", "w-b"}
        missing = await c.delete("/v1/admin/workers/nope", headers=h)
        assert missing.status_code == 404 and "nope" in missing.json()["message"]
