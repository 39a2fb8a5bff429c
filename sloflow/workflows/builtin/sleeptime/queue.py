"""The learn queue: starts a `sleeptime.learn` run for each queued context version, in `learn_order`.

The store is the queue: a version's pass is `queued` from the moment the context is submitted or
changed, so nothing is lost in a restart. `concurrency` runs at a time (default 1): learn calls
only fill idle capacity anyway, and one at a time keeps the order meaningful. A change or a
deletion cancels the run of the version it overtakes. Tenants take turns (`learn_order`): the
queue remembers when each tenant's last pass started.

Learn work is patient: a pass refused by its tenant's tokens-per-minute quota is queued again, and
that tenant's passes wait until the quota's `retry_after_s` has passed (one timer, no polling)
while other tenants' passes go on. The refused pass starts over; the refused call itself lost
nothing, since a call is refused before it generates, but the calls the pass made before it
(derive, anticipate, solve samples that finished) are made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from sloflow.errors import Conflict, NotFound, QuotaExceeded, SloflowError
from sloflow.workflows.builtin.sleeptime.order import learn_order
from sloflow.workflows.contexts import ContextStore, PendingLearn
from sloflow.workflows.records import RunStatus
from sloflow.workflows.runtime import Runtime

LEARN_WORKFLOW = "sleeptime.learn"
MIN_HOLD_S = 1.0  # the shortest wait after a quota refusal
DEFAULT_HOLD_S = 60.0  # the wait when the refusal says none: a quota window
log = logging.getLogger(__name__)


class LearnQueue:
    """Starts learn runs for queued context versions, the most likely asked-about first."""

    def __init__(self, runtime: Runtime, store: ContextStore, *, concurrency: int = 1, learn_input: Mapping[str, Any] | None = None) -> None:
        self.runtime = runtime
        self.store = store
        self.concurrency = concurrency
        self.learn_input = dict(learn_input or {})  # e.g. {"max_tokens": 64}: bounds of every pass
        self._bell = asyncio.Event()
        self._watching: dict[str, asyncio.Task[None]] = {}  # run id -> its watcher
        self._serving: asyncio.Task[None] | None = None
        self._last_started: dict[str, float] = {}  # tenant -> when its last pass started: whose turn it is
        self._held: dict[str, float] = {}  # tenant -> monotonic time its token quota lets its passes start again
        self._timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Take over the passes a previous process left running, then serve the queue.

        Call it after `runtime.resume_unfinished()`: a learn run the runtime resumed is watched; one
        it did not resume is ended and its version queued again.
        """
        for context_id, version, run_id in self.store.running():
            if run_id is not None and self.runtime.is_live(run_id):
                self._watch(run_id, context_id, version)
                continue
            if run_id is not None:
                with contextlib.suppress(Conflict, NotFound):
                    await self.runtime.cancel(run_id)
            self.store.requeue(context_id, version, run_id)
        self._serving = asyncio.create_task(self._serve())
        self.wake()

    def wake(self) -> None:
        """Look at the queue again (a context was submitted or changed, or a pass ended)."""
        self._bell.set()

    async def overtaken(self, run_id: str | None) -> None:
        """Cancel the learn run of a version that a change or deletion overtook, then look at the queue."""
        if run_id is not None:
            with contextlib.suppress(Conflict, NotFound):
                await self.runtime.cancel(run_id)
        self.wake()

    async def close(self) -> None:
        """Stop serving; the runs themselves stop with the runtime (and resume with it)."""
        if self._timer is not None:
            self._timer.cancel()
        tasks = [t for t in (self._serving, *self._watching.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self) -> None:
        while True:
            await self._bell.wait()
            self._bell.clear()
            while len(self._watching) < self.concurrency:
                now = time.monotonic()
                self._held = {t: until for t, until in self._held.items() if until > now}
                jobs = [j for j in learn_order(self.store.pending(), time.time(), self._last_started) if j.tenant not in self._held]
                if not jobs:
                    self._wake_when_released(now)
                    break
                await self._start(jobs[0])

    def _wake_when_released(self, now: float) -> None:
        """Look at the queue again when the first held tenant's quota allows its passes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held:
            self._timer = asyncio.get_running_loop().call_later(min(self._held.values()) - now, self.wake)

    def _hold(self, tenant: str, retry_after_s: float) -> None:
        """Start none of `tenant`'s passes for `retry_after_s` (at least `MIN_HOLD_S`: never a busy loop)."""
        until = time.monotonic() + max(retry_after_s, MIN_HOLD_S)
        self._held[tenant] = max(self._held.get(tenant, 0.0), until)

    async def _start(self, job: PendingLearn) -> None:
        self._last_started[job.tenant] = time.time()
        body = {**self.learn_input, "context_id": job.context_id, "version": job.version}
        try:
            record = await self.runtime.start(LEARN_WORKFLOW, body, tenant=job.tenant)
        except SloflowError as exc:  # e.g. the context was deleted a moment ago, or no such workflow
            self.store.fail_learning(job.context_id, job.version, f"the learn run could not start: {exc.message}")
            return
        if not self.store.start_learning(job.context_id, job.version, record.id):
            await self.overtaken(record.id)  # changed since `pending`: that run would save nothing
            return
        self._watch(record.id, job.context_id, job.version)

    def _watch(self, run_id: str, context_id: str, version: int) -> None:
        self._watching[run_id] = asyncio.create_task(self._ended(run_id, context_id, version))

    async def _ended(self, run_id: str, context_id: str, version: int) -> None:
        """When the run ends: a pass refused by its quota is queued again (its tenant held back), one that
        saved nothing is marked failed, with why; then the next one."""
        try:
            done = await self.runtime.wait(run_id)
            error = done.error or {}
            if done.status is RunStatus.failed and error.get("code") == QuotaExceeded.code and done.tenant is not None:
                retry_after_s = float(error.get("details", {}).get("retry_after_s", DEFAULT_HOLD_S))
                self._hold(done.tenant, retry_after_s)
                self.store.requeue(context_id, version, run_id)
                log.info("learn run %s: tenant %s is over its token quota; its passes wait %.1f s", run_id, done.tenant, retry_after_s)
            elif done.status is not RunStatus.succeeded:
                why = error.get("message") or f"the learn run ended {done.status.value}"
                self.store.fail_learning(context_id, version, why, run_id)
            elif not (done.output or {}).get("saved"):
                self.store.fail_learning(context_id, version, "the learn run ended without saving a learned context", run_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a watcher must not die silently: the queue would stall one slot
            log.exception("learn run %s: could not record how it ended", run_id)
        finally:
            self._watching.pop(run_id, None)
            self.wake()
