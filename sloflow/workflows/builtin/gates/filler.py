"""The bank filler: runs `gates.fill` in the background whenever the bank is below its low-water mark.

It fills up to `high_water` gates, one run at a time, then sleeps until a gate is issued (`wake`)
or `recheck_s` passes. Its runtime is in memory and its own (no checkpoints): a fill run's state
holds the gate's secret word until `save` clears it, and a fill cut short by a restart is cheap to
redo. Its calls carry no deadline, so they run only on idle capacity. Lengths and clue styles
cycle so the bank holds gates of every difficulty; failures back off so a model that cannot make
gates does not keep the workers busy; a run that kept checked clues for later is progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from sloflow.llm.client import LLMClient
from sloflow.workflows.builtin.gates.bank import GateBank
from sloflow.workflows.builtin.gates.fill import FILL_WORKFLOW, fill
from sloflow.workflows.builtin.gates.stock import ClueStock
from sloflow.workflows.records import RunStatus
from sloflow.workflows.registry import Registry
from sloflow.workflows.run_store import MemoryRunStore
from sloflow.workflows.runtime import Runtime

MAX_BACKOFF_S = 60.0
log = logging.getLogger(__name__)


def fill_runtime(client: LLMClient, bank: GateBank, stock: ClueStock | None = None) -> Runtime:
    """An in-memory runtime that runs `gates.fill` against `bank`, stocking checked clues in `stock`
    (a new one if None): nothing it holds but the finished gates reaches a disk."""
    registry = Registry()
    registry.add(fill)
    tools = {"gates": bank, "clues": stock if stock is not None else ClueStock()}
    return Runtime(MemoryRunStore(keep=100), None, client=client, registry=registry, tools=tools)


class GateFiller:
    """Keeps the bank between `low_water` and `high_water` unissued gates."""

    def __init__(
        self,
        client: LLMClient,
        bank: GateBank,
        *,
        low_water: int = 20,
        high_water: int = 40,
        shapes: Sequence[tuple[int, str]] = ((4, "plain"), (5, "plain"), (5, "obscure"), (6, "plain"), (6, "obscure"), (7, "obscure")),
        fill_input: dict[str, Any] | None = None,
        recheck_s: float = 60.0,
    ) -> None:
        if not 0 <= low_water <= high_water:
            raise ValueError(f"need 0 <= low_water <= high_water, got {low_water} and {high_water}")
        self.bank = bank
        self.stock = ClueStock()  # checked clues of dropped gates, for the next runs
        self.runtime = fill_runtime(client, bank, self.stock)
        self.low_water = low_water
        self.high_water = high_water
        self.fill_input = dict(fill_input or {})  # e.g. {"solve_tokens": 256}: bounds of every run
        self.recheck_s = recheck_s
        self._shapes = itertools.cycle(shapes)
        self._bell = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.saved = 0
        self.notes: list[str] = []  # the last run's notes: why a gate was dropped (they never name its word or terms)

    def start(self) -> None:
        """Begin serving in the background (call from the event loop)."""
        self._task = asyncio.create_task(self._serve())

    def wake(self) -> None:
        """Look at the bank again (a gate was issued)."""
        self._bell.set()

    def left(self) -> int:
        return sum(self.bank.available().values())

    async def fill_once(self) -> str | None:
        """One `gates.fill` run; the saved gate's id, or None."""
        letters, obscurity = next(self._shapes)
        done = await self.runtime.run(FILL_WORKFLOW, {**self.fill_input, "letters": letters, "obscurity": obscurity})
        self.runs += 1
        self.notes = list((done.output or {}).get("notes", []))
        if done.status is not RunStatus.succeeded:
            log.warning("gates.fill run %s ended %s: %s", done.id, done.status.value, (done.error or {}).get("message"))
            return None
        gate_id = (done.output or {}).get("gate_id")
        self.saved += gate_id is not None
        return gate_id

    async def _serve(self) -> None:
        failures = 0
        while True:
            await asyncio.to_thread(self.bank.forget_ended)
            if self.left() < self.low_water:
                while self.left() < self.high_water:
                    stocked = len(self.stock)
                    if await self.fill_once() is None and len(self.stock) <= stocked:  # no gate and no clue kept
                        failures += 1
                        await asyncio.sleep(min(2.0 ** min(failures, 6) / 8, MAX_BACKOFF_S))
                    else:
                        failures = 0
            self._bell.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._bell.wait(), self.recheck_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.runtime.interrupt()
