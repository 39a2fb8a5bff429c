"""Contexts that questions will be asked about, their versions, and the learned contexts computed
from them ahead of the questions (sleep-time compute, PAPERS.md section 4).

Kept in the SQLite file the runs live in (`runs.sqlite`), so both survive a restart together. A
context has one current version; its learned context is keyed by (context, version), and a new
version deletes the old one's, so a learned context of an old version can never be read back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sloflow.errors import NotFound

LearnStatus = Literal["queued", "running", "ready", "failed"]
ContextSource = Literal["text", "database"]
RECENT_QUESTIONS = 50  # question times kept per context: what the learn queue's order reads

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contexts (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL,
    database TEXT, text TEXT NOT NULL, priority INTEGER NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, questions INTEGER NOT NULL DEFAULT 0, learn_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS contexts_tenant ON contexts (tenant, created_at);
CREATE TABLE IF NOT EXISTS learned (
    context_id TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL, run_id TEXT,
    content TEXT, tokens INTEGER NOT NULL DEFAULT 0, error TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (context_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS context_questions (context_id TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS context_questions_by_context ON context_questions (context_id, ts);
"""


@dataclass
class LearnedContext:
    """What the learn pass wrote for one version: a summary, derived facts, anticipated questions and quantities."""

    summary: str = ""
    facts: list[str] = field(default_factory=list)
    # {"question"}; a solved one also has "answer" (its working), "result" (the majority number) and "agreement"
    questions: list[dict[str, Any]] = field(default_factory=list)
    # Python assignments of the stated and implied quantities, each of which evaluates (see sleeptime.quantities)
    quantities: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "facts": self.facts, "questions": self.questions, "quantities": self.quantities}


@dataclass
class Learned:
    """The state of one version's learn pass, and its result once it is `ready`."""

    version: int
    status: LearnStatus
    run_id: str | None
    updated_at: float
    tokens: int = 0  # generated tokens the pass spent
    error: str | None = None
    content: LearnedContext | None = None


@dataclass
class Context:
    """A context at its current version, with that version's learn pass and what questions it served."""

    id: str
    tenant: str
    version: int
    source: ContextSource
    database: str | None
    text: str
    priority: int
    created_at: float
    updated_at: float
    questions: int  # questions answered against it, all versions
    learn_tokens: int  # tokens every learn pass of it generated, all versions
    learned: Learned | None


@dataclass(frozen=True)
class PendingLearn:
    """A version waiting for its learn pass, with what the queue orders by."""

    context_id: str
    tenant: str
    version: int
    priority: int
    created_at: float
    asked_at: tuple[float, ...]  # recent question times, newest first


_CONTEXT_COLUMNS = "id, tenant, version, source, database, text, priority, created_at, updated_at, questions, learn_tokens"


class ContextStore:
    """Contexts and learned contexts in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    # --- contexts ----------------------------------------------------------------------------

    def create(self, tenant: str, text: str, *, source: ContextSource = "text", database: str | None = None, priority: int = 0) -> Context:
        """A new context at version 1, its learn pass queued."""
        context_id, now = uuid.uuid4().hex, time.time()
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO contexts ({_CONTEXT_COLUMNS}) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, 0, 0)",
                (context_id, tenant, source, database, text, priority, now, now),
            )
            db.execute("INSERT INTO learned (context_id, version, status, updated_at) VALUES (?, 1, 'queued', ?)", (context_id, now))
        return self.get(context_id, tenant)

    def replace(
        self, context_id: str, tenant: str, text: str, *, source: ContextSource = "text", database: str | None = None, priority: int | None = None
    ) -> tuple[Context, str | None]:
        """The context at a new version, its old learned context deleted and a new pass queued.

        Also returns the run id of a learn pass of the old version still running (to cancel it).
        """
        with self._transaction() as db:
            old = self._row(db, context_id, tenant)
            running = db.execute(
                "SELECT run_id FROM learned WHERE context_id = ? AND status = 'running'", (context_id,)
            ).fetchone()
            now, version = time.time(), old[2] + 1
            db.execute(
                "UPDATE contexts SET version = ?, source = ?, database = ?, text = ?, priority = ?, updated_at = ? WHERE id = ?",
                (version, source, database, text, old[6] if priority is None else priority, now, context_id),
            )
            db.execute("DELETE FROM learned WHERE context_id = ?", (context_id,))
            db.execute("INSERT INTO learned (context_id, version, status, updated_at) VALUES (?, ?, 'queued', ?)", (context_id, version, now))
        return self.get(context_id, tenant), running[0] if running else None

    def delete(self, context_id: str, tenant: str) -> str | None:
        """Remove the context, its learned context and its question log; the run id of a pass still running."""
        with self._transaction() as db:
            self._row(db, context_id, tenant)
            running = db.execute("SELECT run_id FROM learned WHERE context_id = ? AND status = 'running'", (context_id,)).fetchone()
            for table, key in (("contexts", "id"), ("learned", "context_id"), ("context_questions", "context_id")):
                db.execute(f"DELETE FROM {table} WHERE {key} = ?", (context_id,))
        return running[0] if running else None

    def get(self, context_id: str, tenant: str) -> Context:
        """The tenant's context at its current version; another tenant's is `NotFound` too."""
        with self._lock:
            row = self._row(self._db, context_id, tenant)
            learned = self._db.execute(
                "SELECT version, status, run_id, updated_at, tokens, error, content FROM learned WHERE context_id = ? AND version = ?",
                (context_id, row[2]),
            ).fetchone()
        return _context(row, learned)

    def contexts(self, tenant: str, limit: int = 100) -> list[Context]:
        """The tenant's contexts, newest first."""
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM contexts WHERE tenant = ? ORDER BY created_at DESC LIMIT ?", (tenant, limit)
            ).fetchall()]
        return [self.get(i, tenant) for i in ids]

    def asked(self, context_id: str, tenant: str) -> None:
        """Count a question answered against the context (its order in the learn queue and its amortised cost)."""
        with self._transaction() as db:
            self._row(db, context_id, tenant)
            db.execute("UPDATE contexts SET questions = questions + 1 WHERE id = ?", (context_id,))
            db.execute("INSERT INTO context_questions (context_id, ts) VALUES (?, ?)", (context_id, time.time()))
            db.execute(
                "DELETE FROM context_questions WHERE context_id = ? AND ts < "
                "(SELECT ts FROM context_questions WHERE context_id = ? ORDER BY ts DESC LIMIT 1 OFFSET ?)",
                (context_id, context_id, RECENT_QUESTIONS - 1),
            )

    # --- learn passes ------------------------------------------------------------------------

    def pending(self) -> list[PendingLearn]:
        """Every current version whose learn pass is queued, of every tenant."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.tenant, c.version, c.priority, c.created_at FROM learned l "
                "JOIN contexts c ON c.id = l.context_id AND c.version = l.version WHERE l.status = 'queued'"
            ).fetchall()
            asked: dict[str, list[float]] = {}
            for context_id, ts in self._db.execute(
                "SELECT q.context_id, q.ts FROM context_questions q JOIN learned l ON l.context_id = q.context_id "
                "WHERE l.status = 'queued' ORDER BY q.ts DESC"
            ):
                asked.setdefault(context_id, []).append(ts)
        return [PendingLearn(*row, tuple(asked.get(row[0], ()))) for row in rows]

    def running(self) -> list[tuple[str, int, str]]:
        """(context id, version, run id) of every learn pass marked running."""
        with self._lock:
            return self._db.execute("SELECT context_id, version, run_id FROM learned WHERE status = 'running'").fetchall()

    def start_learning(self, context_id: str, version: int, run_id: str) -> bool:
        """Mark the version's pass running in `run_id`; False if it is no longer queued (changed meanwhile)."""
        return self._set(context_id, version, "status = 'running', run_id = ?", (run_id,), "status = 'queued'")

    def requeue(self, context_id: str, version: int, run_id: str) -> bool:
        """Queue again a pass whose run stopped without finishing (e.g. the process stopped)."""
        return self._set(context_id, version, "status = 'queued', run_id = NULL", (), "status = 'running' AND run_id = ?", (run_id,))

    def save_learned(self, context_id: str, version: int, run_id: str, content: LearnedContext, tokens: int) -> bool:
        """Store a finished pass; False (and nothing stored) if the context moved on to another version."""
        with self._transaction() as db:
            saved = db.execute(
                "UPDATE learned SET status = 'ready', run_id = ?, content = ?, tokens = ?, error = NULL, updated_at = ? "
                "WHERE context_id = ? AND version = ? AND (run_id = ? OR status IN ('queued', 'failed'))",
                (run_id, json.dumps(content.to_dict()), tokens, time.time(), context_id, version, run_id),
            ).rowcount
            db.execute("UPDATE contexts SET learn_tokens = learn_tokens + ? WHERE id = ?", (tokens, context_id))
        return bool(saved)

    def fail_learning(self, context_id: str, version: int, error: str, run_id: str | None = None) -> bool:
        """Mark a pass that ended (`run_id`) or could not start (None) without a learned context as failed, with why.

        False if the pass is not in that state any more (saved, or overtaken by a new version).
        """
        if run_id is None:
            return self._set(context_id, version, "status = 'failed', error = ?", (error,), "status = 'queued'")
        return self._set(context_id, version, "status = 'failed', error = ?", (error,), "status = 'running' AND run_id = ?", (run_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- internals -----------------------------------------------------------------------------

    def _set(self, context_id: str, version: int, changes: str, values: tuple[Any, ...], where: str, where_values: tuple[Any, ...] = ()) -> bool:
        with self._lock:
            return bool(self._db.execute(
                f"UPDATE learned SET {changes}, updated_at = ? WHERE context_id = ? AND version = ? AND {where}",
                (*values, time.time(), context_id, version, *where_values),
            ).rowcount)

    @staticmethod
    def _row(db: sqlite3.Connection, context_id: str, tenant: str) -> tuple[Any, ...]:
        row = db.execute(f"SELECT {_CONTEXT_COLUMNS} FROM contexts WHERE id = ? AND tenant = ?", (context_id, tenant)).fetchone()
        if row is None:
            raise NotFound(f"no context with id {context_id!r}; POST /v1/contexts creates one and returns its id")
        return row

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The lock and one BEGIN ... COMMIT around a block (ROLLBACK if it raises)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


def _context(row: tuple[Any, ...], learned: tuple[Any, ...] | None) -> Context:
    (context_id, tenant, version, source, database, text, priority, created, updated, questions, tokens) = row
    state = None
    if learned is not None:
        l_version, status, run_id, l_updated, l_tokens, error, content = learned
        state = Learned(
            l_version, status, run_id, l_updated, l_tokens, error, LearnedContext(**json.loads(content)) if content else None
        )
    return Context(context_id, tenant, version, source, database, text, priority, created, updated, questions, tokens, state)


class TenantContexts:
    """One tenant's contexts as the sleep-time workflows reach them: the run tool `contexts`."""

    def __init__(self, store: ContextStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    def get(self, context_id: str) -> Context:
        """The context at its current version, or `NotFound`."""
        return self.store.get(context_id, self.tenant)

    def asked(self, context_id: str) -> None:
        """Count a question answered against the context."""
        self.store.asked(context_id, self.tenant)

    def save_learned(self, context_id: str, version: int, run_id: str, content: LearnedContext, tokens: int) -> bool:
        """Store a learn pass's result; False if the context has moved on (or gone) meanwhile."""
        try:
            self.get(context_id)
        except NotFound:  # deleted meanwhile
            return False
        return self.store.save_learned(context_id, version, run_id, content, tokens)
