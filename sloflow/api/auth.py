"""Who is calling: `Authorization: Bearer KEY` on every /v1 route but health and ready.

The app holds an `Authenticator` in `app.state.auth`: `KeyAuth` (the default) or `OpenAccess`, for a
personal server on loopback with auth turned off. Handlers take `Caller` (any valid key) or `Admin`.
Each authenticated request also counts against its tenant's requests-per-minute quota, and on a
gated route group must pass the gatekeeper (`app.state.gatekeeper`, see api/gatekeeper.py).
"""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sloflow.api.gate_tokens import HEADER
from sloflow.errors import ConfigError, Forbidden, Unauthorized
from sloflow.tenancy import LOCAL_TENANT, KeyStore, Principal

_bearer = HTTPBearer(
    auto_error=False,
    description="an API key: `sloflow keys create --tenant T` prints one; `make run` keeps a local one in SLOFLOW_HOME/local.key",
)
_HOW = "send `Authorization: Bearer KEY` (create a key with `sloflow keys create --tenant NAME`)"


class Authenticator(Protocol):
    """Turns the request's bearer token (or its absence) into a principal, or raises `Unauthorized`."""

    def principal(self, token: str | None) -> Principal: ...


class KeyAuth:
    """API keys from a `KeyStore`."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def principal(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized(f"this route needs an API key: {_HOW}")
        found = self.keys.authenticate(token)
        if found is None:
            raise Unauthorized(f"the API key is unknown or revoked: {_HOW}")
        return found


class OpenAccess:
    """Auth turned off (a loopback-only personal server): every request is the local tenant's admin."""

    def principal(self, token: str | None) -> Principal:
        return Principal(LOCAL_TENANT, "admin")


async def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller's principal; also counts the request against its tenant's rate and passes it through the gatekeeper."""
    auth: Authenticator | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise ConfigError("the app has no authenticator (app.state.auth); refusing to serve without one")
    if credentials is None and request.headers.get("authorization"):
        raise Unauthorized(f"the Authorization header is not a bearer token: {_HOW}")
    principal = auth.principal(credentials.credentials if credentials else None)
    meter = getattr(request.app.state, "meter", None)
    if meter is not None:
        meter.admit_request(principal.tenant)
    gatekeeper = getattr(request.app.state, "gatekeeper", None)
    if gatekeeper is not None:
        await gatekeeper.admit(request.url.path, request.headers.get(HEADER), principal)
    return principal


async def admin(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """The caller, who must hold an admin key."""
    if not principal.is_admin:
        raise Forbidden("this route needs an admin key (`sloflow keys create --tenant T --admin`)")
    return principal


Caller = Annotated[Principal, Depends(authenticated)]
Admin = Annotated[Principal, Depends(admin)]
