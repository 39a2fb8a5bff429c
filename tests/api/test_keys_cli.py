"""`sloflow keys create | list | revoke` on the server's key store, and the local key of `sloflow serve`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sloflow.api.serve import key_store
from sloflow.cli import app
from sloflow.config import get_settings
from sloflow.tenancy import local_key


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLOFLOW_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_keys_are_created_once_listed_without_secrets_and_revoked(home: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "create", "--tenant", "team-a", "--admin", "--label", "ops"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    store = key_store(get_settings())
    principal = store.authenticate(key)
    assert principal is not None and principal.tenant == "team-a" and principal.role == "admin"
    listed = runner.invoke(app, ["keys", "list"])
    assert principal.key_id in listed.stdout and "team-a" in listed.stdout and key.split("-", 2)[2] not in listed.stdout
    assert runner.invoke(app, ["keys", "revoke", principal.key_id]).exit_code == 0
    assert store.authenticate(key) is None
    bad = runner.invoke(app, ["keys", "create", "--tenant", "Team A"])
    assert bad.exit_code == 2 and "tenant name" in bad.stderr
    assert runner.invoke(app, ["keys", "revoke", "000000000000"]).exit_code == 2


def test_the_local_key_is_made_once_kept_private_and_remade_when_revoked(home: Path) -> None:
    store = key_store(get_settings())
    key, path, made = local_key(store, home)
    assert made and path.stat().st_mode & 0o777 == 0o600
    assert local_key(store, home) == (key, path, False)
    principal = store.authenticate(key)
    assert principal is not None and principal.tenant == "local" and principal.is_admin
    store.revoke(principal.key_id or "")
    again, _, remade = local_key(store, home)
    assert remade and again != key and store.authenticate(again) is not None


def test_a_key_created_gate_exempt_says_so_and_an_old_key_file_gains_the_column(home: Path) -> None:
    import sqlite3

    old = home / "old.sqlite"  # a key store from before reasoning gates
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, role TEXT NOT NULL, salt BLOB NOT NULL, "
               "hash BLOB NOT NULL, created_at REAL NOT NULL, revoked_at REAL, label TEXT NOT NULL DEFAULT '')")
    db.commit()
    db.close()
    from sloflow.tenancy import KeyStore

    upgraded = KeyStore(old)
    _, key = upgraded.create("team-a")
    assert upgraded.authenticate(key).gate_exempt is False  # type: ignore[union-attr]
    upgraded.close()
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "create", "--tenant", "bots", "--gate-exempt"])
    assert made.exit_code == 0, made.output
    principal = key_store(get_settings()).authenticate(made.stdout.strip())
    assert principal is not None and principal.gate_exempt
    assert "gate-exempt" in runner.invoke(app, ["keys", "list"]).stdout
