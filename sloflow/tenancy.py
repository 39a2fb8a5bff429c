"""Tenants, their API keys and their quotas, kept in one SQLite file (`SLOFLOW_HOME/tenants.sqlite`).

A key is shown once, when it is created, and stored only as a salted SHA-256 of its secret: keys
are 256 random bits, so a slow password hash would add latency to every request and no safety.
A key reads `sf-<id>-<secret>`; the id finds the row, the secret is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from sloflow.errors import InvalidRequest, NotFound

Role = Literal["member", "admin"]
Priority = Literal["interactive", "background"]
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # also a folder name: tenants' data live under tenants/<name>
KEY_ID_PATTERN = r"^[0-9a-f]{12}$"
LOCAL_TENANT = "local"  # the tenant of `make run`'s key, and of every request when auth is off
_KEY = re.compile(r"^sf-([0-9a-f]{12})-([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class Principal:
    """Who is asking: the tenant, its role, and the key it used (None when auth is off)."""

    tenant: str
    role: Role
    key_id: str | None = None
    gate_exempt: bool = False  # never asked to solve a reasoning gate (set by an admin)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Quotas:
    """What one tenant may use; `max_priority` caps how urgent its scheduler calls may be."""

    concurrent_runs: int = 8
    requests_per_min: int = 600
    tokens_per_min: int = 200_000
    max_priority: Priority = "interactive"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret."""

    id: str
    tenant: str
    role: Role
    created_at: float
    revoked_at: float | None
    label: str
    gate_exempt: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_tenant(name: str) -> str:
    """A tenant name is 1-63 lower-case letters, digits, '_' or '-', starting with a letter or digit."""
    if not re.match(TENANT_PATTERN, name):
        raise InvalidRequest(f"tenant name {name!r} is invalid: use 1-63 lower-case letters, digits, '_' or '-'")
    return name


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, role TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL,
    created_at REAL NOT NULL, revoked_at REAL, label TEXT NOT NULL DEFAULT '', gate_exempt INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS quotas (tenant TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""
_KEY_COLUMNS = "id, tenant, role, created_at, revoked_at, label, gate_exempt"


class KeyStore:
    """API keys and per-tenant quotas; safe to share between threads."""

    def __init__(self, path: Path | str, default_quotas: Quotas | None = None) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(keys)")}
        if "gate_exempt" not in columns:  # a file from before reasoning gates
            self._db.execute("ALTER TABLE keys ADD COLUMN gate_exempt INTEGER NOT NULL DEFAULT 0")
        self._lock = threading.Lock()
        self.default_quotas = default_quotas or Quotas()

    def create(self, tenant: str, role: Role = "member", label: str = "", gate_exempt: bool = False) -> tuple[KeyInfo, str]:
        """A new key for `tenant`: its listing and the key itself, which is not kept and cannot be shown again."""
        check_tenant(tenant)
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        info = KeyInfo(key_id, tenant, role, time.time(), None, label[:200], gate_exempt)
        with self._lock:
            self._db.execute(
                "INSERT INTO keys (id, tenant, role, salt, hash, created_at, label, gate_exempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, tenant, role, salt, _digest(salt, secret), info.created_at, info.label, int(gate_exempt)),
            )
        return info, f"sf-{key_id}-{secret}"

    def authenticate(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else None."""
        match = _KEY.match(key)
        if match is None:
            return None
        key_id, secret = match.groups()
        with self._lock:
            row = self._db.execute("SELECT tenant, role, salt, hash, revoked_at, gate_exempt FROM keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        tenant, role, salt, stored, revoked, gate_exempt = row
        if revoked is not None or not hmac.compare_digest(_digest(salt, secret), stored):
            return None
        return Principal(tenant, role, key_id, bool(gate_exempt))

    def keys(self, tenant: str | None = None) -> list[KeyInfo]:
        """Every key (or one tenant's), newest first."""
        where, params = ("WHERE tenant = ?", (tenant,)) if tenant else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT {_KEY_COLUMNS} FROM keys {where} ORDER BY created_at DESC", params).fetchall()
        return [_info(row) for row in rows]

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke a key at once; `NotFound` if there is no such key."""
        with self._lock:
            self._db.execute("UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id))
        return self.key(key_id)

    def set_gate_exempt(self, key_id: str, exempt: bool) -> KeyInfo:
        """Exempt a key from reasoning gates (a trusted client), or stop exempting it."""
        with self._lock:
            self._db.execute("UPDATE keys SET gate_exempt = ? WHERE id = ?", (int(exempt), key_id))
        return self.key(key_id)

    def key(self, key_id: str) -> KeyInfo:
        """One key's listing; `NotFound` if there is no such key."""
        with self._lock:
            row = self._db.execute(f"SELECT {_KEY_COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFound(f"no key with id {key_id!r}; `sloflow keys list` or GET /v1/admin/keys lists them")
        return _info(row)

    def tenants(self) -> list[str]:
        """Every tenant that has a key or quotas."""
        with self._lock:
            rows = self._db.execute("SELECT tenant FROM keys UNION SELECT tenant FROM quotas ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def quotas(self, tenant: str) -> Quotas:
        """The tenant's quotas: the defaults with whatever was set for it."""
        with self._lock:
            row = self._db.execute("SELECT doc FROM quotas WHERE tenant = ?", (tenant,)).fetchone()
        if row is None:
            return self.default_quotas
        known = {f.name for f in fields(Quotas)}
        return replace(self.default_quotas, **{k: v for k, v in json.loads(row[0]).items() if k in known})

    def set_quotas(self, tenant: str, **changes: Any) -> Quotas:
        """Change some of a tenant's quotas; the others keep their values."""
        check_tenant(tenant)
        quotas = replace(self.quotas(tenant), **changes)
        with self._lock:
            self._db.execute(
                "INSERT INTO quotas (tenant, doc) VALUES (?, ?) ON CONFLICT (tenant) DO UPDATE SET doc = excluded.doc",
                (tenant, json.dumps(quotas.to_dict())),
            )
        return quotas

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _info(row: tuple[Any, ...]) -> KeyInfo:
    return KeyInfo(*row[:6], gate_exempt=bool(row[6]))


def local_key(keys: KeyStore, home: Path) -> tuple[str, Path, bool]:
    """The local tenant's admin key that `make run` uses: (key, its file, whether it was just made).

    Kept in `home/local.key`, readable by its owner only; made anew if the file is missing or its
    key was revoked.
    """
    path = home / "local.key"
    if path.exists():
        key = path.read_text().strip()
        if keys.authenticate(key) is not None:
            return key, path, False
    _, key = keys.create(LOCAL_TENANT, "admin", label="local key of `sloflow serve`")
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(key + "\n")
    tmp.replace(path)
    return key, path, True
