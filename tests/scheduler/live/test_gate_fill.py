"""Gate-bank filling on the live scheduler (emulated workers): its calls are background calls that
never delay a deadline call; the dispatcher reports the deadline backlog that adaptive gates read."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sloflow.scheduler.live.client import SchedulerClient
from sloflow.workflows.builtin.gates.bank import BANK_FILE, GateBank, server_secret
from sloflow.workflows.builtin.gates.filler import GateFiller
from tests.scheduler.live.test_live import cluster, ctx, emulated, req, worker_holds

pytestmark = pytest.mark.usefixtures("ray_session")


async def test_filling_the_bank_never_delays_a_deadline_call(tmp_path: Path) -> None:
    dispatcher, (w,) = await cluster(emulated("filling", decode=0.02))
    client = SchedulerClient(dispatcher)
    t0 = time.monotonic()
    await client.generate(req(10), ctx(30.0))
    alone_s = time.monotonic() - t0
    bank = GateBank(tmp_path / BANK_FILE, server_secret(tmp_path))
    filler = GateFiller(client, bank, low_water=1, high_water=1)
    filler.start()
    try:
        for _ in range(3):  # beside the filler's writer, checker and solver calls
            await worker_holds(w, queued=0, running=1)
            t0 = time.monotonic()
            urgent = await client.generate(req(10), ctx(30.0))
            assert urgent.completion_tokens == 10
            assert time.monotonic() - t0 < alone_s + 0.5, alone_s
        deadline = time.monotonic() + 60
        while bank.totals().attempts == 0:  # the filler went on: an attempt ends and is counted
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        await filler.close()
        bank.close()


async def test_the_dispatcher_reports_queued_deadline_work_per_worker() -> None:
    dispatcher, (w,) = await cluster(emulated("backlog", decode=0.02))
    client = SchedulerClient(dispatcher)
    assert await dispatcher.deadline_backlog_s.remote() == 0.0
    calls = [asyncio.ensure_future(client.generate(req(50), ctx(60.0))) for _ in range(3)]
    background = asyncio.ensure_future(client.generate(req(50), ctx(None)))
    await worker_holds(w, queued=3, running=1)
    backlog = await dispatcher.deadline_backlog_s.remote()
    assert 2 * 50 * 0.02 * 0.5 < backlog < 3 * 50 * 0.02 * 2  # two deadline calls queued (about 1 s each), not the background one
    await asyncio.gather(*calls, background)
    assert await dispatcher.deadline_backlog_s.remote() == 0.0
