"""Admin: API keys. Create (the key is in the answer, once), list (never secrets), exempt from gates, revoke.

Needs `app.state.keys` (a `KeyStore`).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sloflow.api.auth import Admin
from sloflow.api.params import KeyId
from sloflow.tenancy import TENANT_PATTERN, KeyInfo, KeyStore

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"])


class KeyCreate(BaseModel):
    """A new key for a tenant (created with its first key)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    tenant: str = Field(pattern=TENANT_PATTERN, examples=["team-a"])
    role: Literal["member", "admin"] = "member"
    label: str = Field("", max_length=200, description="what the key is for")
    gate_exempt: bool = Field(False, description="a trusted client: never asked to solve a reasoning gate")


class KeyUpdate(BaseModel):
    """What an admin may change on a key."""

    model_config = ConfigDict(extra="forbid", strict=True)

    gate_exempt: bool = Field(description="true: the key never sees a reasoning gate; false: it does where a route's policy asks")


class KeyOut(BaseModel):
    """A key as listed: never its secret."""

    id: str
    tenant: str
    role: Literal["member", "admin"]
    created_at: float
    revoked_at: float | None
    label: str
    gate_exempt: bool

    @classmethod
    def of(cls, info: KeyInfo) -> KeyOut:
        return cls(**info.to_dict())


class KeyCreated(KeyOut):
    """The new key: `key` is shown only here, keep it."""

    key: str


class KeyList(BaseModel):
    keys: list[KeyOut]


def _keys(request: Request) -> KeyStore:
    return request.app.state.keys


@router.post("", status_code=201, operation_id="create_key")
def create_key(body: KeyCreate, request: Request, caller: Admin) -> KeyCreated:
    """Create a key; the answer holds the key itself, which cannot be shown again."""
    info, key = _keys(request).create(body.tenant, body.role, body.label, gate_exempt=body.gate_exempt)
    return KeyCreated(**info.to_dict(), key=key)


@router.get("", operation_id="list_keys")
def list_keys(request: Request, caller: Admin) -> KeyList:
    """Every key with its tenant, role and state."""
    return KeyList(keys=[KeyOut.of(k) for k in _keys(request).keys()])


@router.patch("/{key_id}", operation_id="update_key")
def update_key(key_id: KeyId, body: KeyUpdate, request: Request, caller: Admin) -> KeyOut:
    """Exempt a key from reasoning gates, or stop exempting it; it applies to its next request."""
    return KeyOut.of(_keys(request).set_gate_exempt(key_id, body.gate_exempt))


@router.post("/{key_id}/revoke", operation_id="revoke_key")
def revoke_key(key_id: KeyId, request: Request, caller: Admin) -> KeyOut:
    """Revoke a key; requests with it get 401 from now on."""
    return KeyOut.of(_keys(request).revoke(key_id))
