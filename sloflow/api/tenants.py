"""The caller's tenant (`GET /v1/tenants/me`: quotas and usage) and, for admins, every tenant's quotas.

Needs `app.state.keys` and `app.state.meter`; uses `app.state.runtime` for the runs in progress.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sloflow.api.auth import Admin, Caller
from sloflow.api.params import TenantName
from sloflow.api.quotas import Meter

router = APIRouter(prefix="/v1", tags=["tenants"])


class QuotasOut(BaseModel):
    """A tenant's quotas."""

    concurrent_runs: int
    requests_per_min: int
    tokens_per_min: int
    max_priority: Literal["interactive", "background"]


class QuotasIn(BaseModel):
    """Quotas to change; the ones left out keep their values."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    concurrent_runs: int | None = Field(None, ge=1, le=100_000)
    requests_per_min: int | None = Field(None, ge=1, le=10_000_000)
    tokens_per_min: int | None = Field(None, ge=1, le=10**12)
    max_priority: Literal["interactive", "background"] | None = Field(
        None, description="background: the tenant's calls use idle capacity only"
    )


class Usage(BaseModel):
    """What the tenant uses now: runs in progress, and requests and LLM tokens of the last minute."""

    active_runs: int
    requests_last_min: int
    tokens_last_min: int


class TenantOut(BaseModel):
    """A tenant with its quotas and usage."""

    tenant: str
    role: Literal["member", "admin"] | None = Field(None, description="the caller's role (on /tenants/me)")
    quotas: QuotasOut
    usage: Usage


def _meter(request: Request) -> Meter:
    return request.app.state.meter


def _tenant(request: Request, tenant: str) -> TenantOut:
    runtime = getattr(request.app.state, "runtime", None)
    meter = _meter(request)
    usage = Usage(active_runs=runtime.active(tenant) if runtime is not None else 0, **meter.usage(tenant))
    return TenantOut(tenant=tenant, quotas=QuotasOut(**meter.quotas(tenant).to_dict()), usage=usage)


@router.get("/tenants/me", operation_id="get_my_tenant")
def me(request: Request, caller: Caller) -> TenantOut:
    """The caller's tenant, role, quotas and current usage."""
    return _tenant(request, caller.tenant).model_copy(update={"role": caller.role})


@router.get("/admin/tenants", operation_id="list_tenants", tags=["admin"])
def list_tenants(request: Request, caller: Admin) -> dict[str, list[TenantOut]]:
    """Every tenant with a key, with quotas and usage."""
    return {"tenants": [_tenant(request, t) for t in request.app.state.keys.tenants()]}


@router.put("/admin/tenants/{tenant}/quotas", operation_id="set_quotas", tags=["admin"])
def set_quotas(tenant: TenantName, body: QuotasIn, request: Request, caller: Admin) -> TenantOut:
    """Change a tenant's quotas (they apply to its next request)."""
    request.app.state.keys.set_quotas(tenant, **body.model_dump(exclude_none=True))
    return _tenant(request, tenant)
