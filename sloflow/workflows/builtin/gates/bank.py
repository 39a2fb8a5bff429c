"""The gate bank: generated gates waiting to be issued, in one SQLite file (`SLOFLOW_HOME/gates.sqlite`).

A gate's answer is never stored: only HMAC-SHA256(server secret, salt + normalised answer). The
hidden words come from a short public list, so a plain salted hash could be reversed by trying
them all; the server secret (`home/gates.secret`, not in the database) prevents that, and one
HMAC keeps verification in microseconds. A gate is issued to one key for one route group, may be
answered once (right or wrong), and is refused after it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sloflow.errors import Conflict, GateBankEmpty, NotFound, WrongAnswer
from sloflow.planners.gates.puzzle import normalise

SECRET_FILE = "gates.secret"
BANK_FILE = "gates.sqlite"
FORGET_AFTER_S = 3600.0
EMPTY_RETRY_S = 60.0  # what a client is told to wait when no gate is left  # an answered or expired gate is deleted this long after it ended

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gates (
    id TEXT PRIMARY KEY, clues TEXT NOT NULL, letters INTEGER NOT NULL, difficulty INTEGER NOT NULL,
    salt BLOB NOT NULL, hash BLOB NOT NULL, solve_tokens INTEGER NOT NULL, created_at REAL NOT NULL,
    key_id TEXT, scope TEXT, issued_at REAL, expires_at REAL, used_at REAL
);
CREATE INDEX IF NOT EXISTS gates_free ON gates (difficulty) WHERE key_id IS NULL;
CREATE INDEX IF NOT EXISTS gates_key ON gates (key_id, scope) WHERE key_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS fill_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1), attempts INTEGER NOT NULL, saved INTEGER NOT NULL,
    generation_tokens INTEGER NOT NULL, label_tokens INTEGER NOT NULL
);
INSERT OR IGNORE INTO fill_totals VALUES (1, 0, 0, 0, 0);
"""


@dataclass(frozen=True)
class Clue:
    """One clue as a solver sees it: its domain and text (never its answer)."""

    domain: str
    text: str


@dataclass(frozen=True)
class Challenge:
    """An issued gate, as a client receives it."""

    id: str
    clues: list[Clue]
    letters: int
    difficulty: int
    expires_at: float
    scope: str

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "clues": [{"domain": c.domain, "clue": c.text} for c in self.clues], "letters": self.letters,
            "difficulty": self.difficulty, "expires_at": round(self.expires_at, 3), "scope": self.scope,
            "solve": f"/v1/gates/{self.id}/solve",
        }


@dataclass(frozen=True)
class FillTotals:
    """What filling the bank has cost so far: every attempt's tokens, saved or not."""

    attempts: int
    saved: int
    generation_tokens: int  # clue writer + checker output tokens
    label_tokens: int  # the labelling solver's output tokens

    @property
    def generation_tokens_per_gate(self) -> float | None:
        return self.generation_tokens / self.saved if self.saved else None


def server_secret(home: Path) -> bytes:
    """The secret that keys answer hashes and access tokens: `home/gates.secret`, made on first use, owner-only."""
    path = home / SECRET_FILE
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    home.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(secret.hex() + "\n")
    tmp.replace(path)
    return secret


class GateBank:
    """Gates waiting to be issued, issued ones, and the totals of filling; safe to share between threads."""

    def __init__(self, path: Path | str, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # no fsync per issue and answer: a crash may lose the last, never corrupt
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._secret = hmac.new(secret, b"gate answers", hashlib.sha256).digest()  # its own key, not the token signer's
        self._clock = clock

    def _hash(self, salt: bytes, answer: str) -> bytes:
        return hmac.new(self._secret, salt + normalise(answer).encode(), hashlib.sha256).digest()

    # --- filling -----------------------------------------------------------------------------

    def add(self, clues: list[Clue], answer: str, difficulty: int, solve_tokens: int) -> str:
        """Keep a verified gate; only a salted, keyed hash of `answer` is stored. Returns its id."""
        gate_id, salt = secrets.token_hex(16), secrets.token_bytes(16)
        doc = json.dumps([[c.domain, c.text] for c in clues])
        with self._lock:
            self._db.execute(
                "INSERT INTO gates (id, clues, letters, difficulty, salt, hash, solve_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (gate_id, doc, len(normalise(answer)), difficulty, salt, self._hash(salt, answer), solve_tokens, self._clock()),
            )
        return gate_id

    def record_attempt(self, *, saved: bool, generation_tokens: int, label_tokens: int) -> None:
        """Count one fill attempt's tokens (a rejected gate's count too: they are the bank's cost)."""
        with self._lock:
            self._db.execute(
                "UPDATE fill_totals SET attempts = attempts + 1, saved = saved + ?, generation_tokens = generation_tokens + ?, "
                "label_tokens = label_tokens + ? WHERE id = 1",
                (int(saved), generation_tokens, label_tokens),
            )

    def totals(self) -> FillTotals:
        with self._lock:
            return FillTotals(*self._db.execute("SELECT attempts, saved, generation_tokens, label_tokens FROM fill_totals").fetchone())

    def available(self) -> dict[int, int]:
        """Gates not yet issued, by difficulty."""
        with self._lock:
            rows = self._db.execute("SELECT difficulty, COUNT(*) FROM gates WHERE key_id IS NULL GROUP BY difficulty").fetchall()
        return dict(rows)

    # --- issuing and answering -------------------------------------------------------------------

    def issue(self, key_id: str, scope: str, difficulty: int, ttl_s: float) -> Challenge:
        """A gate for `key_id` on `scope`: its unexpired unanswered one if it is at least this hard
        (asking again must not drain the bank), else a fresh one of the nearest difficulty, harder first."""
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM gates WHERE key_id = ? AND scope = ? AND used_at IS NULL AND expires_at > ? AND difficulty >= ? "
                "ORDER BY difficulty LIMIT 1",
                (key_id, scope, now, difficulty),
            ).fetchone()
            if row is None:
                row = self._db.execute(
                    "SELECT id FROM gates WHERE key_id IS NULL ORDER BY difficulty < ?, ABS(difficulty - ?), created_at LIMIT 1",
                    (difficulty, difficulty),
                ).fetchone()
                if row is None:
                    raise GateBankEmpty(
                        f"this request needs a solved reasoning gate and none is left to issue; retry after {EMPTY_RETRY_S:.0f} s, "
                        "while the bank is refilled in the background",
                        retry_after_s=EMPTY_RETRY_S,
                    )
                self._db.execute(
                    "UPDATE gates SET key_id = ?, scope = ?, issued_at = ?, expires_at = ? WHERE id = ?", (key_id, scope, now, now + ttl_s, row[0])
                )
            return self._challenge(row[0])

    def _challenge(self, gate_id: str) -> Challenge:
        clues, letters, difficulty, expires_at, scope = self._db.execute(
            "SELECT clues, letters, difficulty, expires_at, scope FROM gates WHERE id = ?", (gate_id,)
        ).fetchone()
        return Challenge(gate_id, [Clue(d, t) for d, t in json.loads(clues)], letters, difficulty, expires_at, scope)

    def answer(self, gate_id: str, key_id: str, answer: str) -> Challenge:
        """Use the gate up and check `answer`; the gate if right. `WrongAnswer` if not; `Conflict` if it
        was answered already or expired; `NotFound` if it was not issued to this key."""
        now = self._clock()
        with self._lock:
            row = self._db.execute("SELECT salt, hash, key_id, expires_at, used_at FROM gates WHERE id = ?", (gate_id,)).fetchone()
            if row is None or row[2] != key_id:
                raise NotFound(f"no gate {gate_id!r} was issued to this key; a gated request answers with a gate's id")
            salt, stored, _, expires_at, used_at = row
            if used_at is not None:
                raise Conflict("this gate was answered already (a gate is single use); repeat the gated request for a new one")
            if expires_at <= now:
                raise Conflict(f"this gate expired {now - expires_at:.0f} s ago; repeat the gated request for a new one")
            self._db.execute("UPDATE gates SET used_at = ? WHERE id = ?", (now, gate_id))
            challenge = self._challenge(gate_id)
        if not hmac.compare_digest(self._hash(salt, answer), stored):
            raise WrongAnswer(
                "wrong answer; the gate is used up and this key's next gates are harder; repeat the gated request for a new one",
                details={"gate_id": gate_id},
            )
        return challenge

    def forget_ended(self) -> int:
        """Delete gates answered or expired more than `FORGET_AFTER_S` ago; how many."""
        cutoff = self._clock() - FORGET_AFTER_S
        with self._lock:
            return self._db.execute(
                "DELETE FROM gates WHERE key_id IS NOT NULL AND (used_at < ? OR expires_at < ?)", (cutoff, cutoff)
            ).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
