"""Run records and event logs: in SQLite (durable, the default) or in memory (ephemeral runs).

Per-stage timings are not stored twice: they are read back from the `stage_finished` events.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from copy import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from pydantic_core import to_json

from sloflow.errors import StorageError
from sloflow.workflows.records import Event, RunRecord, RunStatus
from sloflow.workflows.sqlite_disk import sqlite_target, write_refused

log = logging.getLogger(__name__)

RUNS_FILE = "runs.sqlite"  # under the home folder; contexts (workflows/contexts.py) live in it too
_UPDATABLE = frozenset({"status", "started_at", "finished_at", "deadline_met", "output", "error"})


class RunStore(Protocol):
    """Where runs and their events are kept."""

    read_only: bool  # opened on a read-only disk: it serves the runs it holds and refuses writes

    def create(self, record: RunRecord) -> None:
        """Add a new run."""
        ...

    def update(self, run_id: str, **fields: Any) -> None:
        """Change some of status, started_at, finished_at, deadline_met, output, error."""
        ...

    def get(self, run_id: str) -> RunRecord | None:
        """The run with its per-stage timings, or None."""
        ...

    def runs(self, *, statuses: Iterable[RunStatus] | None = None, limit: int = 100, tenant: str | None = None) -> list[RunRecord]:
        """The newest runs first, optionally only those in `statuses` or of `tenant` (without stage timings)."""
        ...

    def idempotent(self, tenant: str, key: str) -> tuple[str, str] | None:
        """(run id, request digest) of the run first created with this idempotency key, or None."""
        ...

    def keep_idempotent(self, tenant: str, key: str, digest: str, run_id: str) -> None:
        """Remember which run an idempotency key created."""
        ...

    def append(self, run_id: str, ts: float, kind: str, stage: str | None, data: dict[str, Any]) -> None:
        """Add an event to the end of the run's log."""
        ...

    def events(self, run_id: str, after: int = 0) -> list[Event]:
        """The run's events with id > `after`, in order."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


def _stages(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [{"stage": e.stage, **e.data} for e in events if e.kind == "stage_finished"]


class MemoryRunStore:
    """Runs kept in this process only, the newest `keep` finished ones: for ephemeral runtimes and tests."""

    read_only = False

    def __init__(self, keep: int = 10_000) -> None:
        self._keep = keep
        self._runs: dict[str, RunRecord] = {}
        # (ts, kind, stage, data) per event; an Event is built only when read (appends are hot)
        self._events: dict[str, list[tuple[float, str, str | None, dict[str, Any]]]] = {}
        self._idempotent: dict[tuple[str, str], tuple[str, str]] = {}

    def create(self, record: RunRecord) -> None:
        self._runs[record.id] = copy(record)  # the caller's record must not change under it
        self._events[record.id] = []
        if len(self._runs) > self._keep * 1.1:  # evict in batches, not on every run
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        excess = len(self._runs) - self._keep
        for run_id in [r.id for r in self._runs.values() if r.status.finished][:excess]:
            del self._runs[run_id], self._events[run_id]

    def update(self, run_id: str, **fields: Any) -> None:
        record = self._runs[run_id]
        for key, value in fields.items():
            setattr(record, key, value)

    def get(self, run_id: str) -> RunRecord | None:
        record = self._runs.get(run_id)
        if record is None:
            return None
        found = copy(record)
        # read straight from the tuples: this runs at the end of every run
        found.stages = [{"stage": stage, **data} for _, kind, stage, data in self._events[run_id] if kind == "stage_finished"]
        return found

    def runs(self, *, statuses: Iterable[RunStatus] | None = None, limit: int = 100, tenant: str | None = None) -> list[RunRecord]:
        wanted = set(statuses) if statuses is not None else None
        found = [
            r for r in reversed(self._runs.values())
            if (wanted is None or r.status in wanted) and (tenant is None or r.tenant == tenant)
        ]
        return [copy(r) for r in found[:limit]]

    def idempotent(self, tenant: str, key: str) -> tuple[str, str] | None:
        found = self._idempotent.get((tenant, key))
        return found if found is not None and found[0] in self._runs else None

    def keep_idempotent(self, tenant: str, key: str, digest: str, run_id: str) -> None:
        self._idempotent[(tenant, key)] = (run_id, digest)

    def append(self, run_id: str, ts: float, kind: str, stage: str | None, data: dict[str, Any]) -> None:
        self._events[run_id].append((ts, kind, stage, data))

    def events(self, run_id: str, after: int = 0) -> list[Event]:
        log = self._events.get(run_id, [])
        start = max(after, 0)
        return [Event(start + i + 1, run_id, *entry) for i, entry in enumerate(log[start:])]

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL, input TEXT NOT NULL,
    created_at REAL NOT NULL, slo_s REAL, deadline REAL, tenant TEXT, started_at REAL,
    finished_at REAL, deadline_met INTEGER, output TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_tenant ON runs (tenant, created_at);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, id INTEGER NOT NULL, ts REAL NOT NULL, kind TEXT NOT NULL,
    stage TEXT, data TEXT NOT NULL, PRIMARY KEY (run_id, id)
) WITHOUT ROWID;
"""
# Events are written in batches, one transaction at the end of each stage and with each status
# change (and before any read), rather than one per event: a commit costs as much as a short stage.
_COMMIT_AFTER = frozenset({"stage_finished", "stage_failed"})
_COLUMNS = "id, workflow, status, input, created_at, slo_s, deadline, tenant, started_at, finished_at, deadline_met, output, error"


def _dump(value: Any) -> str:
    return to_json(value, fallback=str).decode()


class SqliteRunStore:
    """Runs in one SQLite file; survives the process, so unfinished runs can be resumed.

    On a read-only disk it opens for reading only: old runs are served, every write is a `StorageError`.
    """

    def __init__(self, path: Path | str) -> None:
        target, self.read_only = (str(path), False) if str(path) == ":memory:" else sqlite_target(Path(path), "the run store")
        # One connection, used from the event loop's thread and guarded for the odd other thread.
        self._path = path
        self._db = sqlite3.connect(target, uri=self.read_only, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        if self.read_only:
            log.warning("the run store %s is on a read-only disk: its runs can be read, new ones are refused", path)
        else:
            # WAL with synchronous=NORMAL survives a process crash (not a power cut) without an
            # fsync per event, which would dominate the cost of a short stage.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        self._next_id: dict[str, int] = {}
        self._unwritten: list[tuple[Any, ...]] = []

    def create(self, record: RunRecord) -> None:
        row = (
            record.id, record.workflow, record.status.value, _dump(record.input), record.created_at, record.slo_s,
            record.deadline, record.tenant, record.started_at, record.finished_at, record.deadline_met,
            None if record.output is None else _dump(record.output),
            None if record.error is None else _dump(record.error),
        )
        with self._lock:
            self._flush((f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", row))
            self._next_id[record.id] = 1

    def update(self, run_id: str, **fields: Any) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        values = [
            _dump(v) if k in ("output", "error") and v is not None else (v.value if isinstance(v, RunStatus) else v)
            for k, v in fields.items()
        ]
        with self._lock:
            # with the events before it, in one transaction (e.g. run_finished and the final status)
            self._flush((f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?", (*values, run_id)))

    def get(self, run_id: str) -> RunRecord | None:
        with self._lock:
            self._flush_if_possible()
            row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        record = _record(row)
        record.stages = _stages(self._select_events(run_id, 0, "AND kind = 'stage_finished'"))
        return record

    def runs(self, *, statuses: Iterable[RunStatus] | None = None, limit: int = 100, tenant: str | None = None) -> list[RunRecord]:
        conditions: list[str] = []
        params: tuple[Any, ...] = ()
        if statuses is not None:
            wanted = tuple(s.value for s in statuses)
            conditions.append(f"status IN ({', '.join('?' * len(wanted))})")
            params += wanted
        if tenant is not None:
            conditions.append("tenant = ?")
            params += (tenant,)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._lock:
            self._flush_if_possible()
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs {where} ORDER BY created_at DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [_record(r) for r in rows]

    def idempotent(self, tenant: str, key: str) -> tuple[str, str] | None:
        with self._lock:
            row = self._db.execute("SELECT run_id, digest FROM idempotency WHERE tenant = ? AND key = ?", (tenant, key)).fetchone()
        return None if row is None else (row[0], row[1])

    def keep_idempotent(self, tenant: str, key: str, digest: str, run_id: str) -> None:
        with self._lock:
            self._flush(("INSERT OR REPLACE INTO idempotency (tenant, key, digest, run_id) VALUES (?, ?, ?, ?)", (tenant, key, digest, run_id)))

    def append(self, run_id: str, ts: float, kind: str, stage: str | None, data: dict[str, Any]) -> None:
        with self._lock:
            event_id = self._next_id.get(run_id)
            if event_id is None:  # a run created by an earlier process, now resumed
                (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events WHERE run_id = ?", (run_id,)).fetchone()
                event_id = last + 1
            self._unwritten.append((run_id, event_id, ts, kind, stage, _dump(data)))
            self._next_id[run_id] = event_id + 1
            if kind in _COMMIT_AFTER:
                self._flush_if_possible()  # a stage must not fail for its event; the status update will

    def events(self, run_id: str, after: int = 0) -> list[Event]:
        return self._select_events(run_id, after, "")

    def _select_events(self, run_id: str, after: int, extra: str) -> list[Event]:
        with self._lock:
            self._flush_if_possible()
            rows = self._db.execute(
                f"SELECT id, ts, kind, stage, data FROM events WHERE run_id = ? AND id > ? {extra} ORDER BY id",
                (run_id, after),
            ).fetchall()
        return [Event(i, run_id, ts, kind, stage, json.loads(data)) for i, ts, kind, stage, data in rows]

    def close(self) -> None:
        with self._lock:
            self._flush_if_possible()
            self._db.close()

    def _flush(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Write the buffered events and `statements` in one transaction, or nothing (`StorageError`)."""
        if not self._unwritten and not statements:
            return
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO events (run_id, id, ts, kind, stage, data) VALUES (?, ?, ?, ?, ?, ?)", self._unwritten)
            for sql, params in statements:
                self._db.execute(sql, params)
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            # A full or read-only disk: undo the whole transaction so nothing is half-written; the
            # buffered events stay buffered and go out with the next write that succeeds.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if self.read_only:  # opened read-only, it never will be writable: drop them, not retry on every read
                self._unwritten.clear()
            raise write_refused("the run store", self._path, exc) from None
        self._unwritten.clear()

    def _flush_if_possible(self) -> None:
        """Flush, e.g. so a read sees the latest events; if the disk refuses, keep them buffered."""
        try:
            self._flush()
        except StorageError as exc:
            log.error("%s", exc.message)


def _record(row: tuple[Any, ...]) -> RunRecord:
    (run_id, workflow, status, input_, created, slo, deadline, tenant, started, finished, met, output, error) = row
    return RunRecord(
        id=run_id,
        workflow=workflow,
        status=RunStatus(status),
        input=json.loads(input_),
        created_at=created,
        slo_s=slo,
        deadline=deadline,
        tenant=tenant,
        started_at=started,
        finished_at=finished,
        deadline_met=None if met is None else bool(met),
        output=None if output is None else json.loads(output),
        error=None if error is None else json.loads(error),
    )
