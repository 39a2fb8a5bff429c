"""CLI commands for API keys: `sloflow keys create | list | revoke` (on the server's key store)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from sloflow.config import get_settings
from sloflow.errors import SloflowError

keys_app = typer.Typer(help="API keys: each maps to a tenant, with the role member or admin.", no_args_is_help=True)


def _fail(exc: SloflowError) -> None:
    typer.secho(f"error: {exc.message}", fg="red", err=True)
    raise typer.Exit(2)


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="the tenant the key acts for (made with its first key)")],
    admin: Annotated[bool, typer.Option("--admin", help="the key may manage keys, workers and quotas")] = False,
    label: Annotated[str, typer.Option(help="what the key is for")] = "",
    gate_exempt: Annotated[bool, typer.Option("--gate-exempt", help="a trusted client: never asked to solve a reasoning gate")] = False,
) -> None:
    """Create a key and print it once: only a salted hash of it is kept."""
    from sloflow.api.serve import key_store

    try:
        store = key_store(get_settings())
        info, key = store.create(tenant, "admin" if admin else "member", label, gate_exempt=gate_exempt)
    except SloflowError as exc:
        _fail(exc)
    typer.echo(key)
    typer.secho(f"key {info.id} for tenant {info.tenant} ({info.role}); it is not shown again", err=True)


@keys_app.command("list")
def list_keys(
    tenant: Annotated[Optional[str], typer.Option(help="only this tenant's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """List keys (never their secrets): id, tenant, role, created, revoked."""
    from sloflow.api.serve import key_store

    for info in key_store(get_settings()).keys(tenant):
        if as_json:
            typer.echo(json.dumps(info.to_dict()))
        else:
            state = "revoked" if info.revoked_at else "active"
            exempt = "gate-exempt" if info.gate_exempt else ""
            typer.echo(f"{info.id}  {info.tenant:20} {info.role:7} {state:8} {exempt:11} {info.label}")


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="the key's id (12 hex digits, as listed)")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from sloflow.api.serve import key_store

    try:
        info = key_store(get_settings()).revoke(key_id)
    except SloflowError as exc:
        _fail(exc)
    typer.echo(f"revoked {info.id} ({info.tenant})")
