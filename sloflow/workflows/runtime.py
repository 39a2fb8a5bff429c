"""Runs workflows: start, wait, follow events, cancel, and resume runs a dead process left behind.

A run drives the compiled LangGraph graph in an asyncio task (its own after `start`, the
caller's in `run`) with the run id as its thread id, so the checkpointer can continue it after a
crash. The run store keeps the record and the
event log; followers are woken by a per-run bell rather than by polling.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic_core import to_json, to_jsonable_python

from sloflow.errors import Cancelled, Conflict, InvalidRequest, NotFound, StorageError
from sloflow.llm.client import LLMClient
from sloflow.logs import log_fields
from sloflow.tenancy import LOCAL_TENANT
from sloflow.workflows.checkpoints import open_checkpointer
from sloflow.workflows.context import RunScope, Tools
from sloflow.workflows.graph_workflow import GraphWorkflow
from sloflow.workflows.records import Event, RunRecord, RunStatus, error_dict
from sloflow.workflows.registry import AnyWorkflow, Registry, workflows
from sloflow.workflows.run_store import RUNS_FILE, RunStore, SqliteRunStore

log = logging.getLogger(__name__)

Durability = Literal["sync", "async", "exit"]


@dataclass
class _LiveRun:
    """A run executing in this process."""

    scope: RunScope
    task: asyncio.Task[Any] | None = None  # the task executing it (its own, or run()'s caller)
    finished: asyncio.Future[RunRecord] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    bell: asyncio.Event = field(default_factory=asyncio.Event)
    failed_stage: str | None = None


class Runtime:
    """Starts and tracks runs of registered workflows in this process."""

    def __init__(
        self,
        store: RunStore,
        checkpointer: BaseCheckpointSaver | None,
        *,
        client: LLMClient | None = None,
        tools: Tools | None = None,
        registry: Registry | None = None,
        durability: Durability = "sync",
        tools_of: Callable[[str | None], Tools] | None = None,
    ) -> None:
        self.store = store
        self.checkpointer = checkpointer
        self.client = client
        self.tools: Tools = tools or {}
        # A run's tools are its tenant's (its indexes, databases, plan memory); `tools` without tenants.
        self.tools_of = tools_of
        self.registry = registry if registry is not None else workflows
        # "sync" writes each step's checkpoint before the next step starts: after a crash no
        # finished stage runs again. LangGraph's default, "async", can lose the last step.
        self._durability = {"durability": durability} if checkpointer is not None else {}
        self._graphs: dict[str, tuple[AnyWorkflow, Any]] = {}
        self._live: dict[str, _LiveRun] = {}
        self._closing = False

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        home: Path,
        *,
        checkpoints: str | None = None,
        client: LLMClient | None = None,
        tools: Tools | None = None,
        registry: Registry | None = None,
        tools_of: Callable[[str | None], Tools] | None = None,
    ) -> AsyncIterator[Runtime]:
        """A durable runtime keeping runs in `home`/runs.sqlite (`RUNS_FILE`) and checkpoints per `checkpoints`

        (default `home`/checkpoints.sqlite); live runs are interrupted on exit, to be resumed. On a
        read-only disk it serves the runs recorded there and refuses new ones (`StorageError`).
        """
        async with AsyncExitStack() as stack:
            saver = await stack.enter_async_context(open_checkpointer(checkpoints or home / "checkpoints.sqlite"))
            store = SqliteRunStore(home / RUNS_FILE)
            stack.callback(store.close)
            runtime = cls(store, saver, client=client, tools=tools, registry=registry, tools_of=tools_of)
            try:
                yield runtime
            finally:
                await runtime.interrupt()

    # --- starting and waiting ----------------------------------------------------------------

    async def start(
        self, workflow: str, input: Any, *, slo: float | None = None, tenant: str | None = None, idempotency_key: str | None = None
    ) -> RunRecord:
        """Start a run in its own task and return its record; `slo` overrides the workflow's default.

        With `idempotency_key`, a repeat of the same request by the same tenant returns the run the
        first one started instead of a second run; the same key with another request is a `Conflict`.
        """
        if idempotency_key is not None:
            digest = hashlib.sha256(to_json([workflow, input, slo])).hexdigest()
            owner = tenant or LOCAL_TENANT
            first = self.store.idempotent(owner, idempotency_key)
            if first is not None:
                if first[1] != digest:
                    raise Conflict(
                        f"Idempotency-Key {idempotency_key!r} was used for a different request (run {first[0]}); use a new key for a new run"
                    )
                return self.get(first[0])
        wf, record, value = self._admit(workflow, input, slo, tenant)
        if idempotency_key is not None:
            self.store.keep_idempotent(owner, idempotency_key, digest, record.id)
        live = self._track(wf, record)
        live.task = asyncio.create_task(self._execute(wf, record, value, live, resumed=False))
        return record

    async def run(self, workflow: str, input: Any, *, slo: float | None = None, tenant: str | None = None) -> RunRecord:
        """Execute a run in the calling task and return its finished record.

        Cancelling the caller cancels the run; use `start` and `wait` for a run that outlives it.
        """
        wf, record, value = self._admit(workflow, input, slo, tenant)
        live = self._track(wf, record)
        live.task = asyncio.current_task()
        return await self._execute(wf, record, value, live, resumed=False)

    async def wait(self, run_id: str) -> RunRecord:
        """The run's record once it has finished (at once if it already has)."""
        live = self._live.get(run_id)
        if live is not None:
            return await asyncio.shield(live.finished)
        return self.get(run_id)

    def get(self, run_id: str, tenant: str | None = None) -> RunRecord:
        """The run's record, or `NotFound`; with `tenant`, another tenant's run is not found either."""
        record = self.store.get(run_id)
        if record is None or (tenant is not None and (record.tenant or LOCAL_TENANT) != tenant):
            raise NotFound(f"no run with id {run_id!r}")
        return record

    def runs(self, tenant: str | None = None, limit: int = 100, statuses: tuple[RunStatus, ...] | None = None) -> list[RunRecord]:
        """The newest runs first (of `tenant` only, when given)."""
        return self.store.runs(statuses=statuses, limit=limit, tenant=tenant)

    def is_live(self, run_id: str) -> bool:
        """Whether the run is executing in this process (started, or resumed, and not finished)."""
        return run_id in self._live

    def active(self, tenant: str | None) -> int:
        """How many runs of `tenant` are queued or running in this process."""
        return sum(1 for live in self._live.values() if live.scope.tenant == tenant)

    # --- events ----------------------------------------------------------------------------

    async def follow(self, run_id: str, after: int = 0, tenant: str | None = None) -> AsyncIterator[Event]:
        """The run's events after id `after`, then new ones as they happen, until the run ends."""
        self.get(run_id, tenant)
        while True:
            live = self._live.get(run_id)
            if live is not None:
                live.bell.clear()  # cleared before reading, so no event slips between the two
            events = self.store.events(run_id, after)
            for event in events:
                yield event
                after = event.id
            if live is None:
                if not self.store.events(run_id, after):
                    return
            elif not events:
                await live.bell.wait()

    # --- cancelling and resuming -------------------------------------------------------------

    async def cancel(self, run_id: str, tenant: str | None = None) -> RunRecord:
        """Stop the run before its next stage and withdraw its pending LLM calls."""
        record = self.get(run_id, tenant)
        if record.status.finished:
            raise Conflict(f"run {run_id} has already {record.status.value}; only queued or running runs can be cancelled")
        live = self._live.get(run_id)
        if live is None:  # left behind by a process that died: nothing runs it, so end it here
            self._finish(record, RunStatus.cancelled, error={"code": "cancelled", "message": "cancelled by request"})
        else:
            self._emit(run_id, "cancel_requested", None, {})
            live.scope.cancel()
        return self.get(run_id)

    async def resume_unfinished(self) -> list[str]:
        """Continue the runs a previous process left queued or running; return their ids.

        On a read-only store none is resumed (each would fail at its first event): they stay
        unfinished, to resume at the first start on a writable disk.
        """
        unfinished = self.store.runs(statuses=(RunStatus.queued, RunStatus.running), limit=10_000)
        if self.store.read_only:
            if unfinished:
                log.warning("%d unfinished run(s) not resumed: the run store is on a read-only disk", len(unfinished))
            return []
        resumed = []
        for record in unfinished:
            if record.id in self._live:
                continue
            try:
                wf = self.registry.get(record.workflow)
            except NotFound as exc:
                self._finish(record, RunStatus.failed, error=exc.to_dict())
                continue
            if self.checkpointer is None and record.status is RunStatus.running:
                message = "the process stopped mid-run and this runtime keeps no checkpoints to resume from"
                self._finish(record, RunStatus.failed, error={"code": "interrupted", "message": message})
                continue
            live = self._track(wf, record)
            live.task = asyncio.create_task(self._execute(wf, record, wf.validate_input(record.input), live, resumed=True))
            resumed.append(record.id)
        return resumed

    async def interrupt(self) -> None:
        """Stop the live runs without finishing them (shutdown): a later start resumes them."""
        self._closing = True
        current = asyncio.current_task()
        tasks = [live.task for live in self._live.values() if live.task is not None and live.task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- internals -------------------------------------------------------------------------

    def _graph(self, wf: AnyWorkflow) -> Any:
        cached = self._graphs.get(wf.name)
        if cached is None or cached[0] is not wf:  # first use, or the name was registered anew
            cached = self._graphs[wf.name] = (wf, wf.compile(self.checkpointer))
        return cached[1]

    def _tools(self, tenant: str | None) -> Tools:
        return self.tools_of(tenant) if self.tools_of is not None else self.tools

    def _emit(self, run_id: str, kind: str, stage: str | None, data: dict[str, Any]) -> None:
        self.store.append(run_id, time.time(), kind, stage, data)
        live = self._live.get(run_id)
        if live is not None:
            if kind == "stage_failed":
                live.failed_stage = stage
            live.bell.set()

    def _admit(self, workflow: str, input: Any, slo: float | None, tenant: str | None) -> tuple[AnyWorkflow, RunRecord, Any]:
        """Check a new run's workflow, input and SLO, and record it as queued."""
        wf = self.registry.get(workflow)
        value = wf.validate_input(input)
        wf.check_admission(value, self._tools(tenant))  # e.g. the database it names exists
        slo = wf.slo if slo is None else slo
        if slo is not None and slo <= 0:
            raise InvalidRequest(f"slo must be positive seconds, got {slo}")
        now = time.time()
        record = RunRecord(
            id=uuid.uuid4().hex,
            workflow=wf.name,
            status=RunStatus.queued,
            input=to_jsonable_python(value),
            created_at=now,
            slo_s=slo,
            deadline=None if slo is None else now + slo,
            tenant=tenant,
        )
        self.store.create(record)
        return wf, record, value

    def _track(self, wf: AnyWorkflow, record: RunRecord) -> _LiveRun:
        run_id, append = record.id, self.store.append

        def emit(kind: str, stage: str | None, data: dict[str, Any]) -> None:
            # `_emit` for a live run, without its lookups: stages call this twice each
            append(run_id, time.time(), kind, stage, data)
            if kind == "stage_failed":
                live.failed_stage = stage
            live.bell.set()

        scope = RunScope(run_id, wf.name, record.deadline, self.client, self._tools(record.tenant), emit, record.tenant)
        live = self._live[run_id] = _LiveRun(scope)
        return live

    async def _execute(self, wf: AnyWorkflow, record: RunRecord, value: Any, live: _LiveRun, resumed: bool) -> RunRecord:
        # Everything logged while the run executes (stages, tools, clients) carries its ids.
        with log_fields(run_id=record.id, workflow=wf.name, tenant=record.tenant):
            log.info("run %s (slo %s s)", "resumed" if resumed else "started", record.slo_s)
            try:
                return await self._execute_run(wf, record, value, live, resumed)
            except StorageError as exc:
                # Its progress cannot be recorded (full or read-only disk): whoever waits gets this
                # error rather than waiting for ever; the run stays unfinished on disk, to be resumed.
                log.error("run stopped: %s", exc.message)
                self._release(record.id, live, exc)
                raise

    async def _execute_run(self, wf: AnyWorkflow, record: RunRecord, value: Any, live: _LiveRun, resumed: bool) -> RunRecord:
        run_id = record.id
        self._emit(run_id, "run_resumed" if resumed else "run_started", None, {"deadline": record.deadline})
        self.store.update(run_id, status=RunStatus.running, started_at=record.started_at or time.time())
        config = {"configurable": {"thread_id": run_id}, "recursion_limit": _step_limit(wf)}
        graph = self._graph(wf)
        try:
            if resumed and self.checkpointer is not None:
                snapshot = await graph.aget_state(config)
                if snapshot.values or snapshot.next:  # a checkpoint exists: continue from it
                    value = None
            if isinstance(wf, GraphWorkflow) and not wf.has_sloflow_stages:
                output = await self._drive(graph, value, config, live.scope)
            else:
                output = await graph.ainvoke(value, config, context=live.scope, **self._durability)
        except asyncio.CancelledError:
            if live.scope.cancelled:  # cancel() withdrew an LLM call the stage was awaiting
                return self._end(record, live, RunStatus.cancelled, error=_cancelled(run_id, "by request"))
            if self._closing:  # shutting down: the run stays `running`, to be resumed
                self._live.pop(run_id, None)
                live.finished.cancel()
            else:  # the task executing it was cancelled (run()'s caller went away)
                self._end(record, live, RunStatus.cancelled, error=_cancelled(run_id, "because its caller stopped"))
            raise
        except Cancelled as exc:
            return self._end(record, live, RunStatus.cancelled, error=exc.to_dict())
        except Exception as exc:
            error = error_dict(exc)
            if live.failed_stage is not None:
                error["stage"] = live.failed_stage
            return self._end(record, live, RunStatus.failed, error=error)
        return self._end(record, live, RunStatus.succeeded, output=output)

    def _end(self, record: RunRecord, live: _LiveRun, status: RunStatus, **outcome: Any) -> RunRecord:
        self._finish(record, status, **outcome)
        done = self.get(record.id)
        self._release(record.id, live, done)
        return done

    def _release(self, run_id: str, live: _LiveRun, outcome: RunRecord | StorageError) -> None:
        """The run is no longer live: wake its event readers and hand whoever waits its record, or the error that stopped it."""
        self._live.pop(run_id, None)
        live.bell.set()
        if isinstance(outcome, RunRecord):
            live.finished.set_result(outcome)
        elif not live.finished.done():
            live.finished.set_exception(outcome)
            live.finished.exception()  # marked retrieved: nobody may be waiting

    def _finish(self, record: RunRecord, status: RunStatus, *, output: Any = None, error: dict[str, Any] | None = None) -> None:
        now = time.time()
        # A failed run missed its deadline; a cancelled one was withdrawn before it could tell.
        met = None if record.deadline is None or status is RunStatus.cancelled else (
            status is RunStatus.succeeded and now <= record.deadline
        )
        self._emit(record.id, "run_finished", None, {"status": status.value, "deadline_met": met, "error": error})
        self.store.update(record.id, status=status, finished_at=now, deadline_met=met, output=output, error=error)
        ids = {"run_id": record.id, "workflow": record.workflow, "tenant": record.tenant}
        level = logging.INFO if status is RunStatus.succeeded else logging.WARNING
        log.log(level, "run %s after %.2f s (deadline met: %s)%s", status.value, now - record.created_at, met,
                f": {error.get('message')}" if error else "", extra=ids)

    async def _drive(self, graph: Any, value: Any, config: Mapping[str, Any], scope: RunScope) -> Any:
        """Run a foreign graph, turning its task stream into stage events and cancelling between nodes."""
        started: dict[str, float] = {}
        output = None
        async for mode, chunk in graph.astream(value, config, stream_mode=["tasks", "values"], **self._durability):
            if mode == "values":
                output = chunk
                continue
            if "result" not in chunk and "error" not in chunk:
                scope.check_cancelled(chunk["name"])
                started[chunk["id"]] = time.time()
                scope.emit("stage_started", chunk["name"], {"budget_s": _left(scope)})
                continue
            t0 = started.pop(chunk["id"], time.time())
            facts = {"started_at": t0, "duration_s": time.time() - t0}
            if chunk.get("error") is not None:
                scope.emit("stage_failed", chunk["name"], {**facts, "error": {"message": str(chunk["error"])}})
            else:
                scope.emit("stage_finished", chunk["name"], facts)
        return output


def _left(scope: RunScope) -> float | None:
    return None if scope.deadline is None else max(scope.deadline - time.time(), 0.0)


def _cancelled(run_id: str, why: str) -> dict[str, Any]:
    return Cancelled(f"run {run_id} was cancelled {why}").to_dict()


def _step_limit(wf: AnyWorkflow) -> int:
    """LangGraph's step limit: enough for the longest path the definition allows."""
    if isinstance(wf, GraphWorkflow):
        return 25
    rounds = 1 + sum(loop.max_times for loop in wf.loops.values())
    return len(wf.stages) * rounds + 5
